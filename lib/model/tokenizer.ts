// The model's tokenizer (tokenizer.json) and chat template (tokenizer_config.json).
//
// Library choice: @huggingface/tokenizers (tokenizers.js), the tokenizer code of
// Transformers.js as its own package. It is pure JavaScript with no dependencies, so it
// installs under npm 11, which does not run dependencies' install scripts, and needs no
// per-platform binary. The alternatives: `tokenizers` (the Rust library's Node binding) is
// the reference implementation and faster on long texts, but ships native binaries per
// platform for a second native addon beside kvcake's; @huggingface/transformers carries
// the same tokenizer code plus onnxruntime-node and sharp (native, with install scripts),
// which a tokenizer does not need. Tokenization is off the hot path (once per prompt,
// one token per step when streaming), so pure JS costs nothing that matters here.
// Chat templates are Jinja; @huggingface/jinja is the implementation Transformers.js uses
// for exactly these templates.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';

export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

/** What a tokenizer_config.json says about special tokens and the template. */
interface TokenizerConfigJson {
  bos_token?: unknown;
  eos_token?: unknown;
  pad_token?: unknown;
  unk_token?: unknown;
  chat_template?: unknown;
  clean_up_tokenization_spaces?: boolean;
  [key: string]: unknown;
}

// Special tokens in tokenizer_config.json are a string or an AddedToken object.
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

/** Prompt tokens a stream decodes before the first generated one (vLLM uses the same 5):
 *  enough context for decoders that drop or keep a leading space by what precedes it. */
const STREAM_CONTEXT_TOKENS = 5;

export class Tokenizer {
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  /** Every id of a special added token (skipped by decode with skipSpecialTokens). */
  readonly specialIds: ReadonlySet<number>;
  readonly vocabSize: number;
  private readonly hf: HfTokenizer;
  private readonly template: Template | null;
  private readonly templateVars: Record<string, unknown>;

  /** From the parsed files; `source` names them in errors. */
  constructor(tokenizerJson: unknown, tokenizerConfig: unknown = {}, source = 'tokenizer.json') {
    if (typeof tokenizerJson !== 'object' || tokenizerJson === null) throw new TokenizerError(`${source}: must be a JSON object`);
    const cfg = (typeof tokenizerConfig === 'object' && tokenizerConfig !== null ? tokenizerConfig : {}) as TokenizerConfigJson;
    const tj = tokenizerJson as { added_tokens?: unknown; model?: unknown };
    if (!Array.isArray(tj.added_tokens)) (tj as { added_tokens: unknown[] }).added_tokens = [];
    try {
      this.hf = new HfTokenizer(tokenizerJson, cfg);
    } catch (err) {
      throw new TokenizerError(`${source}: ${(err as Error).message}`, { cause: err });
    }
    const special = new Set<number>();
    for (const t of tj.added_tokens as { id?: unknown; special?: unknown }[]) if (t.special === true && typeof t.id === 'number') special.add(t.id);
    this.specialIds = special;
    this.vocabSize = this.hf.get_vocab(true).size;
    this.bosToken = tokenContent(cfg.bos_token);
    this.eosToken = tokenContent(cfg.eos_token);
    this.bosTokenId = this.bosToken === null ? null : (this.hf.token_to_id(this.bosToken) ?? null);
    this.eosTokenId = this.eosToken === null ? null : (this.hf.token_to_id(this.eosToken) ?? null);

    let tpl = cfg.chat_template;
    // A list of named templates: use the one named "default".
    if (Array.isArray(tpl)) tpl = (tpl as { name?: unknown; template?: unknown }[]).find((t) => t?.name === 'default')?.template;
    if (tpl !== undefined && tpl !== null && typeof tpl !== 'string') throw new TokenizerError(`${source}: chat_template must be a string`);
    try {
      this.template = typeof tpl === 'string' ? new Template(tpl) : null;
    } catch (err) {
      throw new TokenizerError(`${source}: chat_template does not parse: ${(err as Error).message}`, { cause: err });
    }
    // Transformers passes every special token of the config to the template by name.
    this.templateVars = {};
    for (const k of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) {
      const v = tokenContent(cfg[k]);
      if (v !== null) this.templateVars[k] = v;
    }
  }

  /** tokenizer.json and tokenizer_config.json (optional) from a model directory. */
  static async fromDir(dir: string): Promise<Tokenizer> {
    const tjPath = path.join(dir, 'tokenizer.json');
    const tcPath = path.join(dir, 'tokenizer_config.json');
    const tj = await readJson(tjPath);
    if (tj === undefined) throw new TokenizerError(`${tjPath}: not found (only tokenizer.json tokenizers are supported)`);
    const tc = (await readJson(tcPath)) ?? {};
    return new Tokenizer(tj, tc, tjPath);
  }

  /**
   * Text to token ids. `addSpecialTokens` (default true) applies the tokenizer's
   * post-processor, which is what adds BOS for Llama and Mistral; text that already holds
   * special tokens (a rendered chat template) should pass false.
   */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    if (typeof text !== 'string') throw new TypeError('encode: text must be a string');
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  /** Token ids to text. */
  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean; cleanUpSpaces?: boolean } = {}): string {
    const list = Array.from(ids);
    for (let i = 0; i < list.length; i++) {
      const id = list[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new RangeError(`decode: ids[${i}] = ${id} is out of range [0, ${this.vocabSize})`);
    }
    const kept = opts.skipSpecialTokens ? list.filter((id) => !this.specialIds.has(id)) : list;
    if (kept.length === 0) return '';
    return this.hf.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: opts.cleanUpSpaces ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  get hasChatTemplate(): boolean {
    return this.template !== null;
  }

  /** Renders the chat template (as Transformers' apply_chat_template with tokenize=False). */
  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt?: boolean; vars?: Record<string, unknown> } = {}): string {
    if (!this.template) throw new TokenizerError('applyChatTemplate: tokenizer_config.json has no chat_template');
    if (!Array.isArray(messages)) throw new TypeError('applyChatTemplate: messages must be an array of { role, content }');
    messages.forEach((m, i) => {
      if (typeof m?.role !== 'string' || typeof m?.content !== 'string')
        throw new TypeError(`applyChatTemplate: messages[${i}] must have a string role and content`);
    });
    try {
      return this.template.render({ ...this.templateVars, ...opts.vars, messages, add_generation_prompt: opts.addGenerationPrompt ?? false });
    } catch (err) {
      throw new TokenizerError(`applyChatTemplate: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The chat template rendered and encoded; the template writes its own special tokens. */
  encodeChat(messages: ChatMessage[], opts: { addGenerationPrompt?: boolean; vars?: Record<string, unknown> } = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, { addGenerationPrompt: true, ...opts }), { addSpecialTokens: false });
  }

  /**
   * An incremental detokenizer for one generated sequence: push each new token id, get the
   * text it adds. The concatenation of all pieces (and `flush()`) equals
   * decode(generated ids, { skipSpecialTokens }), also when a character's UTF-8 bytes are
   * spread over several tokens: a piece is held back while the decoded text ends in an
   * incomplete character (U+FFFD).
   */
  createStream(opts: { promptIds?: ArrayLike<number>; skipSpecialTokens?: boolean } = {}): DetokenizerStream {
    return new DetokenizerStream(this, opts.promptIds ?? [], opts.skipSpecialTokens ?? true);
  }
}

/**
 * Decodes a window [prefixOffset, end) of the ids and emits the text past what the window
 * [prefixOffset, readOffset) already produced, so each step decodes a few tokens, not the
 * whole sequence, and decoders that depend on the preceding token see it.
 */
export class DetokenizerStream {
  private ids: number[] = [];
  private prefixOffset: number;
  private readOffset: number;

  /** @internal */
  constructor(
    private readonly tok: Tokenizer,
    promptIds: ArrayLike<number>,
    private readonly skipSpecial: boolean,
  ) {
    const tail = Array.from(promptIds).slice(-STREAM_CONTEXT_TOKENS);
    this.ids = tail;
    this.prefixOffset = 0;
    this.readOffset = tail.length;
  }

  /** The text this token adds ('' while a multi-byte character is incomplete). */
  push(id: number): string {
    this.ids.push(id);
    return this.emit(false);
  }

  /** Whatever is held back at the end of the sequence (an incomplete character as U+FFFD). */
  flush(): string {
    return this.emit(true);
  }

  private emit(final: boolean): string {
    const opts = { skipSpecialTokens: this.skipSpecial };
    const prefix = this.tok.decode(this.ids.slice(this.prefixOffset, this.readOffset), opts);
    const text = this.tok.decode(this.ids.slice(this.prefixOffset), opts);
    if (text.length > prefix.length && (final || !text.endsWith('\uFFFD'))) {
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      // Drop ids no window will decode again.
      if (this.prefixOffset > 0) {
        this.ids = this.ids.slice(this.prefixOffset);
        this.readOffset -= this.prefixOffset;
        this.prefixOffset = 0;
      }
      return text.slice(prefix.length);
    }
    return '';
  }
}

async function readJson(p: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(p, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TokenizerError(`${p}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new TokenizerError(`${p}: is not valid JSON (${(err as Error).message})`, { cause: err });
  }
}
