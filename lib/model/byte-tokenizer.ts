// A real tokenizer for dummy-weight models: byte-level BPE without merges (one token per
// UTF-8 byte, GPT-2's byte alphabet), Llama-3-style special tokens and a chat template,
// and reserved special tokens filling the vocabulary up to the config's vocab_size (as
// Llama 3's <|reserved_special_token_N|> do). With it a dummy model serves text and chat
// end to end, with no download: every id the dummy weights can sample decodes.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const SPECIALS = ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'];
/** Smallest vocabulary: 256 bytes and the special tokens. */
export const BYTE_TOKENIZER_MIN_VOCAB = 256 + SPECIALS.length;
/** Ids of the special tokens. */
export const BYTE_TOKENIZER_IDS = { bos: 256, eos: 257, startHeader: 258, endHeader: 259, eot: 260 } as const;

const CHAT_TEMPLATE =
  "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] + '<|eot_id|>' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

function byteAlphabet(): string[] {
  // Printable bytes stand for themselves; the others map above U+0100, in byte order.
  const out: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    out[b] = String.fromCodePoint(printable ? b : next++);
  }
  return out;
}

/** tokenizer.json and tokenizer_config.json contents for a vocabulary of `vocabSize` ids. */
export function byteTokenizerFiles(vocabSize: number): { tokenizerJson: Record<string, unknown>; tokenizerConfig: Record<string, unknown> } {
  if (!Number.isSafeInteger(vocabSize) || vocabSize < BYTE_TOKENIZER_MIN_VOCAB || vocabSize > 1 << 20) {
    throw new RangeError(`byteTokenizerFiles: vocabSize must be an integer in [${BYTE_TOKENIZER_MIN_VOCAB}, ${1 << 20}], got ${vocabSize}`);
  }
  const alphabet = byteAlphabet();
  const vocab: Record<string, number> = {};
  alphabet.forEach((ch, b) => (vocab[ch] = b));
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const added = SPECIALS.map((s, i) => special(256 + i, s));
  for (let id = BYTE_TOKENIZER_MIN_VOCAB; id < vocabSize; id++) added.push(special(id, `<|reserved_special_token_${id - BYTE_TOKENIZER_MIN_VOCAB}|>`));
  return {
    tokenizerJson: {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: SPECIALS[0], type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [{ SpecialToken: { id: SPECIALS[0], type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { [SPECIALS[0]]: { id: SPECIALS[0], ids: [BYTE_TOKENIZER_IDS.bos], tokens: [SPECIALS[0]] } },
      },
      decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges: [],
      },
    },
    tokenizerConfig: {
      bos_token: SPECIALS[0],
      eos_token: SPECIALS[4],
      clean_up_tokenization_spaces: false,
      model_max_length: 1 << 20,
      tokenizer_class: 'PreTrainedTokenizerFast',
      chat_template: CHAT_TEMPLATE,
    },
  };
}

/** Writes the files into `dir` (default: a directory under the OS temp dir named by the
 *  vocabulary size) and returns the directory. */
export function writeByteTokenizer(vocabSize: number, dir = path.join(os.tmpdir(), `kvcake-byte-tokenizer-${vocabSize}`)): string {
  const { tokenizerJson, tokenizerConfig } = byteTokenizerFiles(vocabSize);
  mkdirSync(dir, { recursive: true });
  // Write-then-rename, so a concurrent reader never sees half a file.
  for (const [name, data] of [['tokenizer.json', tokenizerJson], ['tokenizer_config.json', tokenizerConfig]] as const) {
    const tmp = path.join(dir, `.${name}.${process.pid}.tmp`);
    writeFileSync(tmp, JSON.stringify(data));
    renameSync(tmp, path.join(dir, name));
  }
  return dir;
}
