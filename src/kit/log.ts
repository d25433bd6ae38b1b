import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stdout; BERTH_LOG_LEVEL overrides the level (debug shows every decision). */
export function createLogger(name: string, level = process.env.BERTH_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, timestamp: pino.stdTimeFunctions.isoTime, base: { pid: process.pid } });
}

export function errorMessage(error: unknown): string {
  if (error && typeof error === 'object' && 'body' in error) {
    const body = (error as { body?: unknown }).body;
    if (typeof body === 'string') {
      try {
        const status = JSON.parse(body) as { message?: string };
        if (status.message) return status.message;
      } catch {
        return body;
      }
    }
  }
  return error instanceof Error ? error.message : String(error);
}
