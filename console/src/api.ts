/**
 * Every call the console makes goes through here, with the signed-in key as a Bearer token, to
 * the node that served the page: the server checks each one as for any other client.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    /** The API's stable error code (e.g. SQLITE_ERROR, PERMISSION_DENIED), or NETWORK_ERROR. */
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export interface ApiAnswer<T> {
  body: T;
  headers: Headers;
}

export class Api {
  constructor(
    private readonly key: string,
    /** Called on 401: the key stopped working (revoked, or wrong from the start). */
    private readonly onUnauthenticated: (error: ApiError) => void = () => undefined,
  ) {}

  private async send(method: string, path: string, body?: unknown): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(path, {
        method,
        headers: {
          authorization: `Bearer ${this.key}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        cache: 'no-store',
      });
    } catch (error) {
      throw new ApiError(0, 'NETWORK_ERROR', `the node did not answer: ${(error as Error).message}`);
    }
    if (response.ok) return response;
    const text = await response.text();
    let code = `HTTP_${response.status}`;
    let message = text || response.statusText;
    let details: Record<string, unknown> = {};
    try {
      const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } & Record<string, unknown> };
      if (parsed.error?.code) {
        const { code: errorCode, message: errorMessage, ...rest } = parsed.error;
        code = errorCode;
        message = errorMessage ?? message;
        details = rest;
      }
    } catch {
      // not JSON: keep the status and text
    }
    const error = new ApiError(response.status, code, message, details);
    if (response.status === 401) this.onUnauthenticated(error);
    throw error;
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<ApiAnswer<T>> {
    const response = await this.send(method, path, body);
    const text = await response.text();
    return { body: (text ? JSON.parse(text) : undefined) as T, headers: response.headers };
  }

  get<T>(path: string): Promise<T> {
    return this.json<T>('GET', path).then((answer) => answer.body);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.json<T>('POST', path, body).then((answer) => answer.body);
  }

  async delete(path: string): Promise<void> {
    await this.send('DELETE', path);
  }

  async text(path: string): Promise<string> {
    return (await this.send('GET', path)).text();
  }

  async blob(path: string): Promise<{ blob: Blob; headers: Headers }> {
    const response = await this.send('GET', path);
    return { blob: await response.blob(), headers: response.headers };
  }
}

/** A database name in a URL path. */
export const db = (name: string): string => encodeURIComponent(name);
