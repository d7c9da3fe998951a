// `npm run tools -- <command>`: the failover lab, chaos runs and load generation, apart from the `stratum` CLI.
import { runTools } from './cli.ts';

const io = {
  out: (line: string) => process.stdout.write(`${line}\n`),
  err: (line: string) => process.stderr.write(`${line}\n`),
};
process.exitCode = await runTools(process.argv.slice(2), io, process.env, process.cwd());
