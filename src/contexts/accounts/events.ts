import { defineEvent, Type } from '../../platform/context/events.ts';

const AccountPayload = Type.Object({ id: Type.String(), name: Type.String() });

export const AccountCreated = defineEvent('account.created', AccountPayload);
/** An account was renamed: instances drop their cached view of it. */
export const AccountUpdated = defineEvent('account.updated', AccountPayload);

export const ACCOUNTS_EVENTS = [AccountCreated, AccountUpdated] as const;
