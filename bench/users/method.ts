/** One way of creating a user with the score fan-out; the benchmark times `create` and nothing else. */
export interface CreationMethod {
  /** The row label in the report, e.g. `(c) set-based SQL, no HTTP`. */
  name: string;
  create(user: NewUserInput): Promise<void>;
}

export interface NewUserInput {
  username: string;
  firstname: string;
  lastname: string;
}

export const actionText = (id: number, username: string) => `new user created with id ${id} and username ${username}`;
