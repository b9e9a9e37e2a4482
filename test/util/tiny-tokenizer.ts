// Small but real tokenizer.json / tokenizer_config.json files, built the way the Llama 3
// and Qwen2 files are: byte-level BPE (GPT-2's byte-to-unicode alphabet, one token per
// byte, then merges), the Llama 3 split regex, a TemplateProcessing post-processor that
// adds BOS, added special tokens, and the published chat templates. Token ids are chosen
// so expectations can be worked out by hand: byte b is id b, merges follow from 256.

/** GPT-2's reversible map from bytes to printable characters. */
export function byteToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const map: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (printable.includes(b)) map[b] = String.fromCodePoint(b);
    else map[b] = String.fromCodePoint(256 + n++);
  }
  return map;
}

const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** Merges in rank order; the merged token of merge i gets id 256 + i. */
export const MERGES: [string, string][] = [
  ['h', 'e'], //    256 "he"
  ['l', 'l'], //    257 "ll"
  ['he', 'll'], //  258 "hell"
  ['hell', 'o'], // 259 "hello"
  ['Ġ', 't'], //    260 "Ġt"
  ['Ġt', 'he'], //  261 "Ġthe"
  ['Ġ', 'w'], //    262 "Ġw"
];

export const SPECIAL = {
  bos: 263, // <|begin_of_text|>
  eos: 264, // <|end_of_text|>
  startHeader: 265,
  endHeader: 266,
  eot: 267,
} as const;

export const VOCAB_SIZE = 268;

export function llama3TokenizerJson(): Record<string, unknown> {
  const b2u = byteToUnicode();
  const vocab: Record<string, number> = {};
  for (let b = 0; b < 256; b++) vocab[b2u[b]] = b;
  MERGES.forEach(([a, b], i) => {
    vocab[a + b] = 256 + i;
  });
  const added = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      added(SPECIAL.bos, '<|begin_of_text|>'),
      added(SPECIAL.eos, '<|end_of_text|>'),
      added(SPECIAL.startHeader, '<|start_header_id|>'),
      added(SPECIAL.endHeader, '<|end_header_id|>'),
      added(SPECIAL.eot, '<|eot_id|>'),
    ],
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: LLAMA3_SPLIT }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'Sequence',
      processors: [
        { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [
            { SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [SPECIAL.bos], tokens: ['<|begin_of_text|>'] } },
        },
      ],
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: true,
      vocab,
      merges: MERGES.map(([a, b]) => `${a} ${b}`),
    },
  };
}

/** Meta-Llama-3-8B-Instruct's chat template, as published. */
export const LLAMA3_CHAT_TEMPLATE =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/** Qwen2-Instruct's ChatML template, as published. */
export const QWEN2_CHAT_TEMPLATE =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

export function llama3TokenizerConfig(template = LLAMA3_CHAT_TEMPLATE): Record<string, unknown> {
  return {
    bos_token: '<|begin_of_text|>',
    eos_token: '<|eot_id|>',
    clean_up_tokenization_spaces: true,
    model_max_length: 131072,
    tokenizer_class: 'PreTrainedTokenizerFast',
    chat_template: template,
  };
}

/**
 * Llama 2 / Mistral layout: SentencePiece-style BPE with "▁" for spaces (Prepend + Replace
 * normalizer, no pre-tokenizer), byte fallback to <0xXX> tokens, and the decoder chain
 * Replace -> ByteFallback -> Fuse -> Strip that drops the leading space of a text.
 * Ids: <unk> 0, <s> 1, </s> 2, <0x00>..<0xFF> 3..258, then the pieces below.
 */
export const SP_PIECES = ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd', 'he', 'll', '▁he', '▁hell', '▁hello', '▁w'];
export const SP_MERGES = ['h e', 'l l', '▁ he', '▁he ll', '▁hell o', '▁ w'];

export function llama2TokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  SP_PIECES.forEach((p, i) => {
    vocab[p] = 259 + i;
  });
  const added = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [added(0, '<unk>'), added(1, '<s>'), added(2, '</s>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: SP_MERGES,
    },
  };
}
