// Costs: hardware and model specs, presets from public figures, and the cost model that
// predicts step and transfer times (one interface, CostModel).
export type { CostModel, CostItem, ChannelSpec } from './cost-model.js';
export { DEFAULT_STORAGE, checkCostModel } from './cost-model.js';
export { RooflineCost, CALIBRATION, type CostOptions } from './roofline.js';
export type { ModelSpec, GpuSpec } from './specs.js';
export { kvBytesPerToken, kvBytesPerTokenLayer } from './specs.js';
export { GPUS, MODELS, deployment, GPU_MEMORY_UTILIZATION, ACTIVATION_RESERVE, TP_EFFICIENCY, type GpuName, type ModelName } from './presets.js';
export { LinearCost, type LinearCoefficients } from './linear.js';
