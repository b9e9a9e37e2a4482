// The tokenizer on small real tokenizer.json files (byte-level BPE, Llama 3 layout):
// hand-worked encodings, round trips over arbitrary Unicode, special tokens and BOS,
// streaming detokenization across multi-byte characters, and chat templates rendered
// against hand-written expectations.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Tokenizer, TokenizerError } from '../../lib/model/tokenizer.js';
import { tempDir } from '../util/tiny-model.js';
import { QWEN2_CHAT_TEMPLATE, SPECIAL, VOCAB_SIZE, llama2TokenizerJson, llama3TokenizerConfig, llama3TokenizerJson } from '../util/tiny-tokenizer.js';
import { rejectsExactly, throwsExactly } from '../util/throws.js';

const tok = new Tokenizer(llama3TokenizerJson(), llama3TokenizerConfig());
const ids = (s: string) => Array.from(new TextEncoder().encode(s)); // byte b is token b

test('special tokens and vocabulary from the files', () => {
  assert.is(tok.vocabSize, VOCAB_SIZE);
  assert.is(tok.bosToken, '<|begin_of_text|>');
  assert.is(tok.bosTokenId, SPECIAL.bos);
  assert.is(tok.eosToken, '<|eot_id|>');
  assert.is(tok.eosTokenId, SPECIAL.eot);
  assert.equal([...tok.specialIds].sort(), [263, 264, 265, 266, 267]);
  assert.is(tok.tokenToId('Ġthe'), 261);
  assert.is(tok.idToToken(259), 'hello');
});

test('encode: merges applied by rank, BOS from the post-processor, hand-worked ids', () => {
  // "hello" -> h e l l o -> he l l o -> he ll o -> hell o -> hello (259)
  // " the"  -> Ġ t h e -> Ġ t he -> Ġt he -> Ġthe (261)
  assert.equal(tok.encode('hello the'), [SPECIAL.bos, 259, 261]);
  assert.equal(tok.encode('hello the', { addSpecialTokens: false }), [259, 261]);
  // " world" -> Ġw o r l d: no merge past Ġw.
  assert.equal(tok.encode('hello world', { addSpecialTokens: false }), [259, 262, ...ids('orld')]);
  // Merges do not cross pre-tokenizer splits: "the" without its space is t + he.
  assert.equal(tok.encode('the', { addSpecialTokens: false }), [...ids('t'), 256]);
  // Multi-byte characters are one token per UTF-8 byte here.
  assert.equal(tok.encode('é🙂', { addSpecialTokens: false }), ids('é🙂'));
  // Special tokens in text are matched as added tokens.
  assert.equal(tok.encode('<|eot_id|>hello', { addSpecialTokens: false }), [SPECIAL.eot, 259]);
  assert.equal(tok.encode(''), [SPECIAL.bos]);
});

test('decode: text back, special tokens kept or skipped', () => {
  assert.is(tok.decode([SPECIAL.bos, 259, 261]), '<|begin_of_text|>hello the');
  assert.is(tok.decode([SPECIAL.bos, 259, 261, SPECIAL.eot], { skipSpecialTokens: true }), 'hello the');
  assert.is(tok.decode([]), '');
  assert.is(tok.decode([SPECIAL.eot], { skipSpecialTokens: true }), '');
  assert.is(tok.decode(Int32Array.from([259])), 'hello');
  throwsExactly(() => tok.decode([259, 268]), RangeError, 'decode: ids[1] = 268 is out of range [0, 268)');
  throwsExactly(() => tok.decode([-1]), RangeError, 'decode: ids[0] = -1 is out of range [0, 268)');
  throwsExactly(() => tok.decode([1.5]), RangeError, 'decode: ids[0] = 1.5 is out of range [0, 268)');
});

test('round trip: decode(encode(text)) == text for arbitrary Unicode', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (s) => {
      assert.is(tok.decode(tok.encode(s, { addSpecialTokens: false })), s);
    }),
    { numRuns: 300, seed: 3 },
  );
  const s = 'hello the world\n\n  tabs\there, émoji 🙂👍🏽 and 中文';
  assert.is(tok.decode(tok.encode(s), { skipSpecialTokens: true }), s);
});

test('streaming: pieces concatenate to decode(ids), held back inside a multi-byte character', () => {
  const stream = tok.createStream();
  // é is C3 A9, 🙂 is F0 9F 99 82: each byte its own token.
  const seq = [259, ...ids('é'), 261, ...ids('🙂'), SPECIAL.eot, 262];
  const pieces = seq.map((id) => stream.push(id));
  assert.equal(pieces, ['hello', '', 'é', ' the', '', '', '', '🙂', '', ' w']);
  assert.is(stream.flush(), '');
  // Special tokens kept when asked.
  const keep = tok.createStream({ skipSpecialTokens: false });
  assert.equal([SPECIAL.eot, 259].map((id) => keep.push(id)), ['<|eot_id|>', 'hello']);
  // An incomplete character at the end is flushed as U+FFFD, as decode() gives it.
  const cut = tok.createStream();
  assert.is(cut.push(0xf0), '');
  assert.is(cut.push(0x9f), '');
  assert.is(cut.flush(), tok.decode([0xf0, 0x9f]));
  // Any token sequence: the pieces add up to decode() of it.
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: VOCAB_SIZE - 1 }), { maxLength: 30 }), (seqIds) => {
      const s = tok.createStream({ promptIds: [SPECIAL.bos, 259] });
      const text = seqIds.map((id) => s.push(id)).join('') + s.flush();
      assert.is(text, tok.decode(seqIds, { skipSpecialTokens: true }));
    }),
    { numRuns: 300, seed: 5 },
  );
  // Generated text that is valid UTF-8 streams out with nothing left to flush.
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', maxLength: 20 }), (str) => {
      const s = tok.createStream();
      const text = tok.encode(str, { addSpecialTokens: false }).map((id) => s.push(id)).join('');
      assert.is(text, str);
      assert.is(s.flush(), '');
    }),
    { numRuns: 200, seed: 6 },
  );
});

test('chat template (Llama 3): rendered as published, encoded without a second BOS', () => {
  const messages = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: '  hello  ' },
  ];
  const want =
    '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>' +
    '<|start_header_id|>user<|end_header_id|>\n\nhello<|eot_id|>' +
    '<|start_header_id|>assistant<|end_header_id|>\n\n';
  assert.is(tok.applyChatTemplate(messages, { addGenerationPrompt: true }), want);
  assert.is(tok.applyChatTemplate(messages), want.slice(0, want.lastIndexOf('<|start_header_id|>')));
  const enc = tok.encodeChat(messages);
  assert.is(enc.filter((t) => t === SPECIAL.bos).length, 1);
  assert.equal(enc.slice(0, 3), [SPECIAL.bos, SPECIAL.startHeader, ...ids('s')]);
  assert.equal(enc.slice(-3), [SPECIAL.endHeader, ...ids('\n\n')]);
  assert.is(tok.decode(enc), want);
});

test('chat template (Qwen2 ChatML), named templates, errors', () => {
  const q = new Tokenizer(llama3TokenizerJson(), { ...llama3TokenizerConfig(QWEN2_CHAT_TEMPLATE), bos_token: null });
  assert.is(q.bosTokenId, null);
  assert.is(
    q.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true }),
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
  );
  const named = new Tokenizer(llama3TokenizerJson(), {
    ...llama3TokenizerConfig(),
    chat_template: [
      { name: 'tool_use', template: 'TOOLS' },
      { name: 'default', template: '{{ messages[0].content }}!' },
    ],
  });
  assert.is(named.applyChatTemplate([{ role: 'user', content: 'x' }]), 'x!');
  const none = new Tokenizer(llama3TokenizerJson(), { bos_token: { content: '<|begin_of_text|>', special: true } });
  assert.is(none.bosTokenId, SPECIAL.bos);
  assert.is(none.hasChatTemplate, false);
  throwsExactly(() => none.applyChatTemplate([]), TokenizerError, 'applyChatTemplate: tokenizer_config.json has no chat_template');
  const raising = new Tokenizer(llama3TokenizerJson(), { chat_template: "{{ raise_exception('Conversation roles must alternate') }}" });
  throwsExactly(() => raising.applyChatTemplate([{ role: 'user', content: 'a' }]), TokenizerError, 'applyChatTemplate: Conversation roles must alternate');
  throwsExactly(() => tok.applyChatTemplate([{ role: 'user' } as never]), TypeError, 'applyChatTemplate: messages[0] must have a string role and content');
  assert.throws(() => new Tokenizer(llama3TokenizerJson(), { chat_template: '{% for %}' }), (e: Error) => e instanceof TokenizerError && e.message.startsWith('tokenizer.json: chat_template does not parse: '));
  throwsExactly(() => new Tokenizer(null), TokenizerError, 'tokenizer.json: must be a JSON object');
});

test('fromDir: reads tokenizer.json and tokenizer_config.json, names missing or bad files', async () => {
  const t = tempDir();
  try {
    await rejectsExactly(Tokenizer.fromDir(t.dir), TokenizerError, `${path.join(t.dir, 'tokenizer.json')}: not found (only tokenizer.json tokenizers are supported)`);
    writeFileSync(path.join(t.dir, 'tokenizer.json'), JSON.stringify(llama3TokenizerJson()));
    const noConfig = await Tokenizer.fromDir(t.dir);
    assert.equal(noConfig.encode('hello'), [SPECIAL.bos, 259]);
    assert.is(noConfig.eosTokenId, null);
    writeFileSync(path.join(t.dir, 'tokenizer_config.json'), JSON.stringify(llama3TokenizerConfig()));
    const full = await Tokenizer.fromDir(t.dir);
    assert.is(full.eosTokenId, SPECIAL.eot);
    writeFileSync(path.join(t.dir, 'tokenizer_config.json'), '{,');
    await rejectsExactly(
      Tokenizer.fromDir(t.dir),
      TokenizerError,
      `${path.join(t.dir, 'tokenizer_config.json')}: is not valid JSON (${(() => {
        try {
          JSON.parse('{,');
        } catch (e) {
          return (e as Error).message;
        }
      })()})`,
    );
  } finally {
    t.cleanup();
  }
});


test('SentencePiece-style BPE (Llama 2 / Mistral): ▁ spaces, byte fallback, leading space kept in a stream after the prompt', () => {
  const sp = new Tokenizer(llama2TokenizerJson(), { bos_token: '<s>', eos_token: '</s>', clean_up_tokenization_spaces: false });
  assert.is(sp.bosTokenId, 1);
  assert.is(sp.eosTokenId, 2);
  // "hello world" -> ▁hello▁world -> ▁hello ▁w o r l d
  assert.equal(sp.encode('hello world'), [1, 271, 272, 263, 265, 262, 266]);
  // é is not a piece: its UTF-8 bytes C3 A9 as <0xC3> <0xA9>.
  assert.equal(sp.encode('hello é', { addSpecialTokens: false }), [271, 259, 3 + 0xc3, 3 + 0xa9]);
  assert.is(sp.decode([1, 271, 272, 263, 265, 262, 266], { skipSpecialTokens: true }), 'hello world');
  assert.is(sp.decode([271, 259, 3 + 0xc3, 3 + 0xa9]), 'hello é');
  // The first generated token after a prompt keeps its space; with no prompt it is stripped.
  const after = sp.createStream({ promptIds: sp.encode('hello') });
  assert.equal([272, 263, 3 + 0xc3, 3 + 0xa9].map((id) => after.push(id)), [' w', 'o', '', 'é']);
  const fresh = sp.createStream();
  assert.is(fresh.push(271), 'hello');
  assert.is(fresh.push(272), ' w');
});

test.run();
