/**
 * The error that configuration loading throws, and the helpers that word
 * its messages so that each one names the option and the value but never
 * prints a secret.
 *
 * @module
 */

/** Invalid or unreadable configuration; the message names the option. */
export class ConfigError extends Error {
  /** The option as the user wrote it: a flag, a variable or a file key. */
  readonly option: string | undefined;

  constructor(
    message: string,
    options?: ErrorOptions & { option?: string },
  ) {
    super(message, options);
    this.name = "ConfigError";
    this.option = options?.option;
  }
}

/** Text that replaces a secret value in messages. */
export const REDACTED = '"***"';

/** Maximum length of a value shown in a message, in characters. */
const MAX_SHOWN_LENGTH = 80;

/**
 * Formats a value for an error message: text in double quotes, other
 * values as JSON, secrets as {@linkcode REDACTED}, long values cut short.
 */
export function showValue(value: unknown, secret = false): string {
  if (secret) return REDACTED;

  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  if (text.length <= MAX_SHOWN_LENGTH) return text;
  return text.slice(0, MAX_SHOWN_LENGTH - 3) + "...";
}

/** Builds the error for a value that failed validation. */
export function invalidValue(
  option: string,
  value: unknown,
  expected: string,
  secret = false,
): ConfigError {
  return new ConfigError(
    `Invalid value for ${option}: ${
      showValue(value, secret)
    } (expected ${expected})`,
    { option },
  );
}
