// The single source of truth for the data model: migrations are generated from it.
export * from './enums.js';
export * from './core.js';
export * from './crm.js';
export * from './billing.js';
export * from './inbox.js';
export * from './followups.js';
export * from './work.js';
export * from './cron.js';
export * from './bounces.js';
