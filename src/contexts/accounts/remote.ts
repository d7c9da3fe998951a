import { AppError } from '../../platform/errors/app-error.ts';
import type { ServiceClient } from '../../platform/remote/service-client.ts';

/**
 * The ports accounts gives other contexts, over HTTP to the accounts-data service: for the images service of the
 * split deployment. `accounts.views` does nothing there: no process of the split deployment caches a view.
 * @example const ports = remoteAccountPorts(createServiceClient({ name: 'accounts-data', urls }));
 */
export function remoteAccountPorts(data: ServiceClient): Record<string, unknown> {
  const exists = async (accountId: string): Promise<boolean> => {
    const answer = await data.request({ path: `/internal/accounts/${encodeURIComponent(accountId.toLowerCase())}` });
    if (answer.status === 200) return true;
    if (answer.status === 404) return false;
    throw new AppError('DEPENDENCY.UNAVAILABLE', `accounts-data answered ${answer.status} to an existence check`, {
      details: { dependency: data.name, reason: 'failed', attempts: answer.attempts },
    });
  };
  return {
    'accounts.exists': exists,
    'accounts.views': { invalidate: async () => {}, forget: () => {} },
  };
}
