// The safetensors reader against files written by the tests' own writer: valid single
// and sharded checkpoints, every refusal word for word (truncated files and hostile
// headers included), chunked payload reads, and a fuzzer that throws random and mutated
// headers at the parser (it must answer with a SafetensorsError or a consistent header,
// never anything else).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  MAX_HEADER_BYTES,
  SafetensorsError,
  openCheckpoint,
  parseSafetensors,
  readSafetensorsHeader,
  readTensorChunks,
} from '../../lib/model/safetensors.js';
import { buildSafetensors, encodeValues, rawSafetensors } from '../util/safetensors-writer.js';
import { TINY, tempDir, writeTinyModel } from '../util/tiny-model.js';
import { rejectsExactly, throwsExactly } from '../util/throws.js';

const F = '<memory>';
const E = (msg: string) => `${F}: ${msg}`;
const ST = SafetensorsError;

function twoTensors(): Uint8Array {
  return buildSafetensors(
    [
      { name: 'a', dtype: 'F32', shape: [2, 3], values: [1, 2, 3, 4, 5, 6] },
      { name: 'b', dtype: 'BF16', shape: [4], values: [1, -2, 0.5, 3] },
    ],
    { format: 'pt' },
  );
}

test('valid file: tensors, absolute offsets, metadata, header padding', () => {
  const bytes = twoTensors();
  const h = parseSafetensors(bytes);
  assert.equal(h.metadata, { format: 'pt' });
  assert.is(h.tensors.size, 2);
  const a = h.tensors.get('a')!;
  const b = h.tensors.get('b')!;
  assert.is(h.dataStart % 8, 0);
  assert.equal([a.dtype, a.shape, a.offset, a.byteLength], ['F32', [2, 3], h.dataStart, 24]);
  assert.equal([b.dtype, b.shape, b.offset, b.byteLength], ['BF16', [4], h.dataStart + 24, 8]);
  assert.equal(Array.from(new Float32Array(bytes.slice(a.offset, a.offset + 24).buffer)), [1, 2, 3, 4, 5, 6]);
  // A scalar (shape []) holds one element; an empty tensor holds none and may sit anywhere.
  const s = parseSafetensors(
    rawSafetensors({ s: { dtype: 'F64', shape: [], data_offsets: [0, 8] }, e: { dtype: 'F16', shape: [0, 7], data_offsets: [8, 8] } }, new Uint8Array(8)),
  );
  assert.is(s.tensors.get('s')!.byteLength, 8);
  assert.is(s.tensors.get('e')!.byteLength, 0);
  assert.is(parseSafetensors(rawSafetensors({})).tensors.size, 0);
});

test('header length: too short a file, below 2, over the limit, past the end', () => {
  throwsExactly(() => parseSafetensors(new Uint8Array(0)), ST, E('file is 0 bytes, too short for the 8-byte header length'));
  throwsExactly(() => parseSafetensors(new Uint8Array(7)), ST, E('file is 7 bytes, too short for the 8-byte header length'));
  throwsExactly(() => parseSafetensors(rawSafetensors({}, undefined, { lengthOverride: 1n })), ST, E('header length 1 is below the minimum of 2 bytes ("{}")'));
  throwsExactly(() => parseSafetensors(rawSafetensors({}, undefined, { lengthOverride: 0n })), ST, E('header length 0 is below the minimum of 2 bytes ("{}")'));
  throwsExactly(
    () => parseSafetensors(rawSafetensors({}, undefined, { lengthOverride: BigInt(MAX_HEADER_BYTES) + 1n })),
    ST,
    E('header length 100000001 exceeds the limit of 100000000 bytes'),
  );
  throwsExactly(
    () => parseSafetensors(rawSafetensors({}, undefined, { lengthOverride: 2n ** 64n - 1n })),
    ST,
    E('header length 18446744073709551615 exceeds the limit of 100000000 bytes'),
  );
  throwsExactly(() => parseSafetensors(rawSafetensors({}, undefined, { lengthOverride: 3n })), ST, E('header length 3 runs past the end of the file (10 bytes): truncated file?'));
});

test('header JSON: UTF-8, object, each entry', () => {
  const withHeader = (text: string) => rawSafetensors(null, undefined, { headerText: text });
  const bytes = new Uint8Array([...rawSafetensors(null, undefined, { headerText: '{"a":1}' })]);
  bytes[10] = 0xff; // inside the JSON
  throwsExactly(() => parseSafetensors(bytes), ST, E('header is not valid UTF-8'));
  throwsExactly(() => parseSafetensors(withHeader('[1, 2]')), ST, E('header does not start with "{"'));
  throwsExactly(() => parseSafetensors(withHeader(' {}')), ST, E('header does not start with "{"'));
  throwsExactly(() => parseSafetensors(withHeader('{"a": ')), ST, E(`header is not valid JSON (${jsonError('{"a": ')})`));
  const entry = (e: unknown) => parseSafetensors(rawSafetensors({ w: e }, new Uint8Array(8)));
  throwsExactly(() => entry(7), ST, E('tensor "w": entry must be an object with dtype, shape and data_offsets'));
  throwsExactly(() => entry({ dtype: 'Q4', shape: [2], data_offsets: [0, 8] }), ST, E('tensor "w": dtype "Q4" is not a safetensors dtype'));
  throwsExactly(() => entry({ dtype: 'toString', shape: [2], data_offsets: [0, 8] }), ST, E('tensor "w": dtype "toString" is not a safetensors dtype'));
  throwsExactly(() => entry({ shape: [2], data_offsets: [0, 8] }), ST, E('tensor "w": dtype undefined is not a safetensors dtype'));
  throwsExactly(() => entry({ dtype: 'F32', shape: [2, -1], data_offsets: [0, 8] }), ST, E('tensor "w": shape must be an array of non-negative integers, got [2,-1]'));
  throwsExactly(() => entry({ dtype: 'F32', shape: [1.5], data_offsets: [0, 8] }), ST, E('tensor "w": shape must be an array of non-negative integers, got [1.5]'));
  throwsExactly(() => entry({ dtype: 'F32', shape: '2', data_offsets: [0, 8] }), ST, E('tensor "w": shape must be an array of non-negative integers, got "2"'));
  throwsExactly(() => entry({ dtype: 'F32', shape: [2], data_offsets: [8, 0] }), ST, E('tensor "w": data_offsets must be [begin, end] with integers 0 <= begin <= end, got [8,0]'));
  throwsExactly(() => entry({ dtype: 'F32', shape: [2], data_offsets: [0] }), ST, E('tensor "w": data_offsets must be [begin, end] with integers 0 <= begin <= end, got [0]'));
  throwsExactly(() => entry({ dtype: 'F32', shape: [2], data_offsets: [-8, 0] }), ST, E('tensor "w": data_offsets must be [begin, end] with integers 0 <= begin <= end, got [-8,0]'));
  throwsExactly(
    () => entry({ dtype: 'F32', shape: [2], data_offsets: [0, 2 ** 60] }),
    ST,
    E('tensor "w": data_offsets must be [begin, end] with integers 0 <= begin <= end, got [0,1152921504606847000]'),
  );
  throwsExactly(() => entry({ dtype: 'F32', shape: [2 ** 30, 2 ** 30], data_offsets: [0, 8] }), ST, E('tensor "w": shape [1073741824, 1073741824] has too many elements'));
  throwsExactly(() => entry({ dtype: 'F32', shape: [3], data_offsets: [0, 8] }), ST, E('tensor "w": shape [3] of F32 needs 12 bytes but data_offsets [0, 8] hold 8'));
  throwsExactly(() => entry({ dtype: 'F16', shape: [2, 2], data_offsets: [0, 6] }), ST, E('tensor "w": shape [2, 2] of F16 needs 8 bytes but data_offsets [0, 6] hold 6'));
  throwsExactly(() => parseSafetensors(rawSafetensors({ __metadata__: { a: 1 } })), ST, E('__metadata__ must be an object of string values'));
  throwsExactly(() => parseSafetensors(rawSafetensors({ __metadata__: 'x' })), ST, E('__metadata__ must be an object of string values'));
});

test('ranges: past the data section (truncated), overlapping, holes', () => {
  const hdr = (h: unknown, dataBytes: number) => parseSafetensors(rawSafetensors(h, new Uint8Array(dataBytes)));
  const jsonLen = (h: unknown) => JSON.stringify(h).length;
  const past = { w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } };
  throwsExactly(
    () => hdr(past, 12),
    ST,
    E(`tensor "w": data_offsets [0, 16] run past the end of the data section (12 bytes after the ${8 + jsonLen(past)}-byte header): truncated file?`),
  );
  const overlap = { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } };
  throwsExactly(() => hdr(overlap, 24), ST, E('tensors "a" [0, 16) and "b" [8, 24) overlap'));
  const same = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'I32', shape: [2], data_offsets: [0, 8] } };
  throwsExactly(() => hdr(same, 8), ST, E('tensors "a" [0, 8) and "b" [0, 8) overlap'));
  const inside = { big: { dtype: 'U8', shape: [32], data_offsets: [0, 32] }, small: { dtype: 'U8', shape: [4], data_offsets: [10, 14] } };
  throwsExactly(() => hdr(inside, 32), ST, E('tensors "big" [0, 32) and "small" [10, 14) overlap'));
  const hole = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [16, 24] } };
  throwsExactly(() => hdr(hole, 24), ST, E('data bytes [8, 16) belong to no tensor (the format allows no holes)'));
  const lead = { a: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } };
  throwsExactly(() => hdr(lead, 12), ST, E('data bytes [0, 4) belong to no tensor (the format allows no holes)'));
  throwsExactly(() => hdr(lead, 12), ST, E('data bytes [0, 4) belong to no tensor (the format allows no holes)'));
  const tail = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  throwsExactly(() => hdr(tail, 20), ST, E('data bytes [8, 20) at the end of the file belong to no tensor (the format allows no holes)'));
});

function jsonError(text: string): string {
  try {
    JSON.parse(text);
  } catch (err) {
    return (err as Error).message;
  }
  return '';
}

test('files: header read from disk, truncated files, missing files', async () => {
  const t = tempDir();
  try {
    const file = path.join(t.dir, 'model.safetensors');
    const bytes = twoTensors();
    writeFileSync(file, bytes);
    const h = await readSafetensorsHeader(file);
    assert.is(h.file, file);
    assert.is(h.tensors.get('b')!.file, file);
    // Cut inside the payload: the last tensor runs past the end.
    truncateSync(file, bytes.length - 3);
    await rejectsExactly(
      readSafetensorsHeader(file),
      ST,
      `${file}: tensor "b": data_offsets [24, 32] run past the end of the data section (29 bytes after the ${h.dataStart}-byte header): truncated file?`,
    );
    // Cut inside the header.
    truncateSync(file, 20);
    await rejectsExactly(readSafetensorsHeader(file), ST, `${file}: header length ${h.dataStart - 8} runs past the end of the file (20 bytes): truncated file?`);
    truncateSync(file, 5);
    await rejectsExactly(readSafetensorsHeader(file), ST, `${file}: file is 5 bytes, too short for the 8-byte header length`);
    await rejectsExactly(readSafetensorsHeader(path.join(t.dir, 'nope.safetensors')), ST, `${path.join(t.dir, 'nope.safetensors')}: cannot open (ENOENT)`);
  } finally {
    t.cleanup();
  }
});

test('payload: chunked reads return the bytes in order, whole elements per chunk', async () => {
  const t = tempDir();
  try {
    const file = path.join(t.dir, 'x.safetensors');
    const values = Array.from({ length: 1000 }, (_, i) => i * 0.25 - 100);
    writeFileSync(file, buildSafetensors([{ name: 'pad', dtype: 'F16', shape: [3], values: [1, 2, 3] }, { name: 'x', dtype: 'F32', shape: [10, 100], values }]));
    const info = (await readSafetensorsHeader(file)).tensors.get('x')!;
    for (const chunkBytes of [1, 6, 4096, 1 << 20]) {
      const got = new Uint8Array(info.byteLength);
      let calls = 0;
      await readTensorChunks(
        info,
        (bytes, off) => {
          assert.ok(bytes.length % 4 === 0 && bytes.length <= Math.max(4, chunkBytes));
          got.set(bytes, off);
          calls++;
        },
        { chunkBytes },
      );
      assert.equal(Array.from(new Float32Array(got.buffer)), values);
      assert.is(calls, Math.ceil(4000 / Math.max(4, Math.floor(chunkBytes / 4) * 4)));
    }
    // The file shrinks after its header was read: the read fails, naming the tensor.
    truncateSync(file, info.offset + 100);
    await rejectsExactly(
      readTensorChunks(info, () => {}, { chunkBytes: 64 }),
      ST,
      `${file}: read 36 of 64 bytes of tensor "x" at offset ${info.offset + 64}: the file was truncated while reading`,
    );
    const ac = new AbortController();
    ac.abort(new Error('stop'));
    await rejectsExactly(readTensorChunks(info, () => {}, { signal: ac.signal }), Error, 'stop');
  } finally {
    t.cleanup();
  }
});

test('checkpoints: single file, sharded index, and what a bad index does', async () => {
  const one = writeTinyModel(TINY[0]);
  const sharded = writeTinyModel(TINY[0], { shards: 3 });
  try {
    const a = await openCheckpoint(one.dir);
    const b = await openCheckpoint(sharded.dir);
    assert.is(a.files.length, 1);
    assert.is(b.files.length, 3);
    assert.equal([...a.tensors.keys()].sort(), [...b.tensors.keys()].sort());
    const idx = path.join(sharded.dir, 'model.safetensors.index.json');
    const map = (m: Record<string, unknown>) => writeFileSync(idx, JSON.stringify({ weight_map: m }));
    const shard1 = 'model-00001-of-00003.safetensors';
    map({ 'model.embed_tokens.weight': '../model.safetensors' });
    await rejectsExactly(openCheckpoint(sharded.dir), ST, `${idx}: weight_map["model.embed_tokens.weight"] = "../model.safetensors" must be a file name in the same directory`);
    map({ 'model.embed_tokens.weight': '/etc/passwd' });
    await rejectsExactly(openCheckpoint(sharded.dir), ST, `${idx}: weight_map["model.embed_tokens.weight"] = "/etc/passwd" must be a file name in the same directory`);
    map({ 'model.embed_tokens.weight': 'missing.safetensors' });
    await rejectsExactly(openCheckpoint(sharded.dir), ST, `${idx}: names shard missing.safetensors, which does not exist`);
    map({ 'lm_head.weight': shard1 });
    await rejectsExactly(openCheckpoint(sharded.dir), ST, `${idx}: maps tensor "lm_head.weight" to ${shard1}, which does not contain it`);
    map({});
    await rejectsExactly(openCheckpoint(sharded.dir), ST, `${idx}: weight_map is empty`);
    writeFileSync(idx, JSON.stringify({ weights: {} }));
    await rejectsExactly(openCheckpoint(sharded.dir), ST, `${idx}: weight_map must be an object of tensor name -> shard file name`);
    writeFileSync(idx, '{');
    await rejectsExactly(openCheckpoint(sharded.dir), ST, `${idx}: is not valid JSON (${jsonError('{')})`);
    // The same tensor in two shards.
    writeFileSync(path.join(sharded.dir, 'dup.safetensors'), buildSafetensors([{ name: 'model.norm.weight', dtype: 'F32', shape: [1], values: [1] }]));
    const lastShard = [...b.tensors.values()].find((x) => x.name === 'model.norm.weight')!.file;
    map({ 'model.norm.weight': 'dup.safetensors', x: path.basename(lastShard) });
    await rejectsExactly(openCheckpoint(sharded.dir), ST, `${idx}: tensor "model.norm.weight" is in two shards, dup.safetensors and ${path.basename(lastShard)}`);
    const empty = tempDir();
    await rejectsExactly(openCheckpoint(empty.dir), ST, `${empty.dir}: no model.safetensors or model.safetensors.index.json`);
    empty.cleanup();
  } finally {
    one.cleanup();
    sharded.cleanup();
  }
});

test('fuzz: random bytes and mutated valid files give a consistent header or a SafetensorsError', () => {
  const valid = twoTensors();
  const check = (bytes: Uint8Array) => {
    try {
      const h = parseSafetensors(bytes);
      const ranges = [...h.tensors.values()].filter((t) => t.byteLength > 0).sort((a, b) => a.offset - b.offset);
      let at = h.dataStart;
      for (const r of ranges) {
        assert.ok(r.offset === at, 'contiguous');
        at += r.byteLength;
      }
      assert.ok(at === bytes.length, 'covers the data section exactly');
    } catch (err) {
      if (!(err instanceof SafetensorsError)) throw err;
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), check), { numRuns: 500, seed: 42 });
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), fc.nat(valid.length), (edits, cut) => {
      const b = valid.slice(0, Math.max(cut, 1));
      for (const [i, v] of edits) if (i < b.length) b[i] = v;
      check(b);
    }),
    { numRuns: 2000, seed: 7 },
  );
  // Structured hostile headers: arbitrary JSON values in every field.
  const entry = fc.record({ dtype: fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'U8', 'Q4'), fc.anything()), shape: fc.oneof(fc.array(fc.integer({ min: -2, max: 9 }), { maxLength: 3 }), fc.anything()), data_offsets: fc.oneof(fc.tuple(fc.integer({ min: -4, max: 300 }), fc.integer({ min: -4, max: 300 })), fc.anything()) }, { requiredKeys: [] });
  fc.assert(
    fc.property(fc.dictionary(fc.string({ maxLength: 4 }), entry, { maxKeys: 4 }), fc.nat(300), (h, dataBytes) => {
      check(rawSafetensors(h, new Uint8Array(dataBytes)));
    }),
    { numRuns: 2000, seed: 11 },
  );
});

test('encodeValues (test writer) sanity: bf16 bytes are the high halves of fp32', () => {
  const b = encodeValues('BF16', [1, -2]);
  assert.equal(Array.from(b), [0x80, 0x3f, 0x00, 0xc0]);
});

test.run();
