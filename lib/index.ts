export { Backend, KVPool, Tensor, Work, createBackend, openBackend, cudaInfo, usableBackends, addonPath } from './backend.js';
export type { BackendKind, BackendOptions, PoolOptions, KVLayout, Tier, TensorData, TensorInput, AppendArgs, DecodeArgs, PrefillArgs, WaitList, DType, CudaInfo } from './backend.js';
export { encodeValues, decodeValues, dtypeBytes, fp32ToFp16Bits, fp16BitsToFp32, fp32ToBf16Bits, bf16BitsToFp32 } from './backend/dtype.js';
