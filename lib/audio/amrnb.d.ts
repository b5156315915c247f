/**
 * Types for `amr-js/library/amrnb.js`: an Emscripten (asm.js) build of OpenCORE-AMR's
 * AMR-NB decoder and encoder, which ships no types. Only what lib/audio/amr.ts and the
 * fixture recipe use is declared.
 */
declare module 'amr-js/library/amrnb.js' {
  /** AMR-NB codec modes (bit rates 4.75 … 12.2 kbit/s). */
  interface AmrModes {
    MR475: number;
    MR515: number;
    MR59: number;
    MR67: number;
    MR74: number;
    MR795: number;
    MR102: number;
    MR122: number;
    MRDTX: number;
  }

  interface AmrNbCodec {
    /**
     * Decodes an AMR-NB file (with the `#!AMR\n` magic) to 16-bit PCM at 8 kHz mono.
     * Returns null when the magic is missing or the decoder cannot start.
     */
    _decode(amr: Uint8Array): Int16Array | null;
    /** Like `_decode`, scaled to floats in [-1, 1). */
    decode(amr: Uint8Array): Float32Array | null;
    /** Encodes float samples in [-1, 1] to an AMR-NB file; null on failure. */
    encode(pcm: Float32Array, pcmSampleRate: number, mode?: number): Uint8Array | null;
    readonly Mode: AmrModes;
    readonly AMR_HEADER: string;
  }

  const codec: AmrNbCodec;
  export = codec;
}
