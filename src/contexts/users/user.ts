/** A user as stratum's API shows it. `score` is a JSON number, as in the source system. */
export interface User {
  id: number;
  username: string;
  score: number;
  created: string;
  updated: string | null;
  profile: { firstname: string; lastname: string };
}

export interface NewUser {
  username: string;
  score: number;
  profile: { firstname: string; lastname: string };
}

export interface Action {
  id: number;
  description: string;
  created: string;
}
