export {
  CHECK_STEPS_MAX_DEFAULT,
  type CheckOptions,
  checkLinearizable,
  HistoryError,
  type HistoryErrorDetail,
} from './linearizability.js';
export {
  type KvInput,
  type KvOutput,
  kvModel,
  type RegisterInput,
  type RegisterOutput,
  registerModel,
} from './models.js';
export { HistoryRecorder } from './recorder.js';
export type { CheckResult, History, Model, Operation, OperationStatus } from './types.js';
