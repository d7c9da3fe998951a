import { defineEvent, Type } from '../../platform/context/events.ts';

/** An account's image was set: instances drop their cached view of the account. */
export const ImageChanged = defineEvent('image.changed', Type.Object({ accountId: Type.String(), url: Type.String() }));

export const IMAGES_EVENTS = [ImageChanged] as const;
