/** Talking to a Warden started by a benchmark: admin login and API keys over HTTP. */

/** Logs in; returns the session cookie (`name=value`). */
export async function loginCookie(baseUrl: string, email: string, password: string): Promise<string> {
  const res = await fetch(`${baseUrl}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
    signal: AbortSignal.timeout(10_000),
  });
  if (res.status !== 200) {
    throw new Error(`login failed with ${res.status}: ${await res.text()}`);
  }
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0];
  if (cookie === undefined || cookie === '') {
    throw new Error('login answered without a session cookie');
  }
  return cookie;
}

/** Creates an API key with the given scopes over HTTP; returns its id and secret. */
export async function createApiKey(
  baseUrl: string,
  cookie: string,
  keyName: string,
  scopes: readonly string[],
): Promise<{ id: number; key: string }> {
  const res = await fetch(`${baseUrl}/api/v1/api-keys`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie },
    body: JSON.stringify({ name: keyName, scopes }),
    signal: AbortSignal.timeout(10_000),
  });
  if (res.status !== 201) {
    throw new Error(`creating the API key failed with ${res.status}: ${await res.text()}`);
  }
  const body = (await res.json()) as { key?: unknown; api_key?: { id?: unknown } };
  if (typeof body.key !== 'string' || typeof body.api_key?.id !== 'number') {
    throw new Error(`creating the API key answered an unexpected body: ${JSON.stringify(body)}`);
  }
  return { id: body.api_key.id, key: body.key };
}
