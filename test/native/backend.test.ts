// Backend selection and reporting: 'auto' picks cuda only when usable, 'cuda' where
// unusable throws with the reason (never a silent fallback), the chosen backend's name and
// device are readable, and Work is a real Promise.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Work, addonPath, createBackend, cudaInfo, openBackend, usableBackends } from '../../lib/index.js';

test('auto picks cuda exactly when cudaInfo says it is usable', async () => {
  const info = cudaInfo();
  const be = await openBackend({ backend: 'auto' });
  assert.is(be.name, info.usable ? 'cuda' : 'cpu');
  assert.type(be.deviceName, 'string');
  assert.ok(be.deviceName.length > 0);
  assert.equal(usableBackends(), info.usable ? ['cpu', 'cuda'] : ['cpu']);
  assert.match(addonPath(), /kvcake|node/);
});

test('cuda where unusable throws with the reason; cpu is always there', () => {
  const info = cudaInfo();
  if (!info.usable) {
    assert.throws(() => createBackend({ backend: 'cuda' }), (e: Error) => e.message.includes(info.reason) && e.message.includes('not usable'));
    assert.ok(info.reason.length > 0);
  }
  const cpu = createBackend({ backend: 'cpu' });
  assert.is(cpu.name, 'cpu');
  assert.is(cpu.device, 0);
});

test('Work is a Promise whose then() gives plain Promises', async () => {
  const be = createBackend({ backend: 'cpu' });
  const t = be.tensor({ dtype: 'fp32', shape: [8] });
  const w = t.write(new Float32Array(8));
  assert.instance(w, Promise);
  assert.instance(w, Work);
  const chained = w.then(() => 1);
  assert.not.instance(chained, Work);
  assert.is(await chained, 1);
  assert.ok(w.done);
  t.release();
});
// The CPU device capacity is also read from the environment.
test('KVCAKE_CPU_DEVICE_BYTES limits the CPU device tier', () => {
  const old = process.env.KVCAKE_CPU_DEVICE_BYTES;
  process.env.KVCAKE_CPU_DEVICE_BYTES = String(64 * 1024);
  try {
    const be = createBackend({ backend: 'cpu' });
    assert.throws(() => be.tensor({ dtype: 'fp32', shape: [32 * 1024] }), /cannot allocate a tensor of 131072 bytes in the device tier/);
    be.tensor({ dtype: 'fp32', shape: [32 * 1024], tier: 'host' }).release();
    process.env.KVCAKE_CPU_DEVICE_BYTES = 'lots';
    assert.throws(() => createBackend({ backend: 'cpu' }), /KVCAKE_CPU_DEVICE_BYTES must be a non-negative integer byte count, got 'lots'/);
  } finally {
    if (old === undefined) delete process.env.KVCAKE_CPU_DEVICE_BYTES;
    else process.env.KVCAKE_CPU_DEVICE_BYTES = old;
  }
});

// The thread pool's knobs are checked when a backend is created, not on a worker thread.
test('a bad KVCAKE_NUM_THREADS or KVCAKE_SPIN_US is an error at createBackend', () => {
  const saved = { threads: process.env.KVCAKE_NUM_THREADS, spin: process.env.KVCAKE_SPIN_US };
  try {
    for (const v of ['0', 'four', '-2', '4097']) {
      process.env.KVCAKE_NUM_THREADS = v;
      assert.throws(() => createBackend({ backend: 'cpu' }), (e: Error) => e.message === `KVCAKE_NUM_THREADS must be an integer from 1 to 4096 (threads), got '${v}'`);
    }
    delete process.env.KVCAKE_NUM_THREADS;
    for (const v of ['-1', '50us', '1e9', '100001']) {
      process.env.KVCAKE_SPIN_US = v;
      assert.throws(() => createBackend({ backend: 'cpu' }), (e: Error) => e.message === `KVCAKE_SPIN_US must be an integer from 0 to 100000 (microseconds), got '${v}'`);
    }
    for (const v of ['0', '200']) {
      process.env.KVCAKE_SPIN_US = v;
      createBackend({ backend: 'cpu' });
    }
  } finally {
    for (const [k, v] of [['KVCAKE_NUM_THREADS', saved.threads], ['KVCAKE_SPIN_US', saved.spin]] as const)
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  }
});

test.run();
