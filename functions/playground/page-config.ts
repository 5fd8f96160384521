/**
 * What the server tells the page (embedded in it as JSON): whether keys are on, the defaults the
 * controls show, and the input limits. Made from the server's own constants, so the page never
 * keeps a copy that could drift.
 */
export interface PlaygroundConfig {
  /** Show the API key field: /v1 answers 401 without a Bearer key. */
  keysOn: boolean;
  /** The marker that places an image in the prompt (`<image>`). */
  imageToken: string;
  defaults: {
    temperature: { text: number; image: number };
    topP: number;
    /** 0 = off */
    topK: number;
    repetitionPenalty: number;
    guidance: { text: number; image: number };
  };
  limits: { maxImages: number; maxImageBytes: number; maxN: number; uploadTypes: readonly string[] };
  /** The served model: its name (GET /v1/models) and what its config says (model/checkpoint-summary.ts). */
  model: { id: string; layers: number; imageSize: number; randomShape: boolean };
}
