import type { ChatCompletionBody } from './schemas.ts';

/**
 * OpenAI chat messages → one Anole prompt. Anole has no chat template: a turn ends with the sep
 * token (`<reserved08706>`, which the processor also appends after the prompt so the model
 * answers), and an image sits where its `<image>` marker is. Roles carry no tokens of their own.
 *
 *   [{user: "Hi"}, {assistant: "Hello"}, {user: ["What is", image]}]
 *     → "Hi<sep>Hello<sep>What is<image>"   (+ <sep> from the processor)
 */
export interface ChatPrompt {
  prompt: string;
  /** Image references in prompt order. */
  images: string[];
  /** Where each image came from in the request (`messages[2].content[1].image_url.url`), for errors. */
  imageParams: string[];
}

export function chatPrompt(messages: ChatCompletionBody['messages'], tokens: { sep: string; image: string }): ChatPrompt {
  const images: string[] = [];
  const imageParams: string[] = [];
  const turns = messages.map((m, i) => {
    if (typeof m.content === 'string') return m.content;
    return m.content
      .map((part, j) => {
        if (part.type === 'text') return part.text;
        images.push(part.image_url.url);
        imageParams.push(`messages[${i}].content[${j}].image_url.url`);
        return tokens.image;
      })
      .join('');
  });
  return { prompt: turns.join(tokens.sep), images, imageParams };
}
