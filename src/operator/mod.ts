/** The operator's public surface. */
export { startOperator, DEFAULT_OPERATOR_SETTINGS, type OperatorHandle, type OperatorSettings, type OperatorExit } from './operator.js';
export { postgresInventory, type EventInventory, type InventoryPort, type SaleWindow } from './inventory-port.js';
export { plan, phaseOf, type Plan, type Observed, type PlanSettings, type Action } from './plan.js';
export { eventIdOf, objectKeyOfEventId } from './event-id.js';
export { parseOperatorFlags, flagsUsage } from './flags.js';
export { FINALIZER, type TicketEventObject } from './types.js';
export * as v1alpha1 from './api/v1alpha1.js';
