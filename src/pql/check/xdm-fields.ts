import { buildCatalog, DEFAULT_SCHEMA_FIELDS, type SchemaFieldRow } from './catalog.js';

const profile = (path: string, type: string): SchemaFieldRow => ({ class: 'profile', path, type });
const event = (path: string, type: string): SchemaFieldRow => ({ class: 'event', path, type });

/**
 * The common XDM field groups of the profile and ExperienceEvent classes, so definitions copied
 * from the commercial documentation run on a fresh sandbox without declaring the standard fields
 * first. Only the leaves people segment on are listed; a user may add more fields below these
 * objects, but cannot give one of these paths another type.
 */
export const XDM_FIELD_GROUPS: readonly SchemaFieldRow[] = Object.freeze([
  // Demographic details, personal contact details.
  profile('person.name.middleName', 'string'),
  profile('person.name.fullName', 'string'),
  profile('person.name.courtesyTitle', 'string'),
  profile('person.birthDayAndMonth', 'string'),
  profile('person.birthYear', 'number'),
  profile('person.maritalStatus', 'string'),
  profile('personalEmail.status', 'string'),
  profile('homePhone.number', 'string'),
  profile('mobilePhone.status', 'string'),
  profile('homeAddress.street1', 'string'),
  profile('homeAddress.street2', 'string'),
  profile('homeAddress.country', 'string'),
  profile('homeAddress.region', 'string'),
  // Work contact details.
  profile('workEmail.address', 'string'),
  profile('workPhone.number', 'string'),
  profile('workAddress.street1', 'string'),
  profile('workAddress.city', 'string'),
  profile('workAddress.stateProvince', 'string'),
  profile('workAddress.postalCode', 'string'),
  profile('workAddress.country', 'string'),
  profile('workAddress.countryCode', 'string'),
  // Loyalty details, user account, preferences.
  profile('loyalty.loyaltyID', 'string'),
  profile('loyalty.status', 'string'),
  profile('userAccount.startDate', 'datetime'),
  profile('preferences.preferredLanguage', 'string'),
  profile('consents.marketing.push', 'boolean'),
  profile('consents.marketing.sms', 'boolean'),
  // Web details.
  event('web.webPageDetails.pageViews.value', 'number'),
  event('web.webPageDetails.siteSection', 'string'),
  event('web.webReferrer.URL', 'string'),
  event('web.webInteraction.name', 'string'),
  event('web.webInteraction.URL', 'string'),
  event('web.webInteraction.linkClicks.value', 'number'),
  // Commerce details.
  event('commerce.purchases.value', 'number'),
  event('commerce.productViews.value', 'number'),
  event('commerce.productListAdds.value', 'number'),
  event('commerce.productListRemovals.value', 'number'),
  event('commerce.productListOpens.value', 'number'),
  event('commerce.productListViews.value', 'number'),
  event('commerce.checkouts.value', 'number'),
  event('commerce.order.purchaseID', 'string'),
  event('commerce.order.purchaseOrderNumber', 'string'),
  event('productListItems.currencyCode', 'string'),
  event('productListItems.productAddMethod', 'string'),
  event('metrics.commerce.abandons.value', 'number'),
  // Environment, device, place context, application, marketing.
  event('environment.browserDetails.name', 'string'),
  event('environment.type', 'string'),
  event('device.type', 'string'),
  event('device.manufacturer', 'string'),
  event('placeContext.geo.countryCode', 'string'),
  event('placeContext.geo.city', 'string'),
  event('placeContext.geo.stateProvince', 'string'),
  event('application.launches.value', 'number'),
  event('application.name', 'string'),
  event('marketing.trackingCode', 'string'),
  event('marketing.trackingCodeType', 'string'),
  // Adobe Analytics and campaign details.
  event('_experience.analytics.customDimensions.eVars.eVar1', 'string'),
  event('_experience.analytics.customDimensions.eVars.eVar2', 'string'),
  event('_experience.analytics.customDimensions.props.prop1', 'string'),
  event('_experience.campaign.message.id', 'string'),
] satisfies SchemaFieldRow[]);

/** Every field the platform provides: the defaults of docs/domain.md and the XDM field groups. */
export const BUILT_IN_SCHEMA_FIELDS: readonly SchemaFieldRow[] = Object.freeze([
  ...DEFAULT_SCHEMA_FIELDS,
  ...XDM_FIELD_GROUPS,
]);

const BUILT_IN_BY_PATH = new Map(BUILT_IN_SCHEMA_FIELDS.map((f) => [`${f.class}:${f.path}`, f]));

/**
 * Why a user's field cannot sit beside the built-in ones, or undefined when it can: the same
 * path with another type, a field below a built-in scalar, or a scalar above built-in fields.
 */
export function builtInConflict(row: SchemaFieldRow): string | undefined {
  const same = BUILT_IN_BY_PATH.get(`${row.class}:${row.path}`);
  if (same) {
    return same.type === row.type
      ? undefined
      : `"${row.path}" is the built-in ${row.class} field of type ${same.type}; it cannot be declared as ${row.type}`;
  }
  try {
    buildCatalog([...BUILT_IN_SCHEMA_FIELDS.filter((f) => f.class === row.class), row]);
    return undefined;
  } catch (e) {
    return `"${row.path}" conflicts with the built-in ${row.class} fields: ${(e as Error).message}`;
  }
}
