export type { CheckResult, History, Model, Operation, OperationStatus } from './types.js';
