/**
 * The MemLayer API client: openapi-fetch over the types generated from the service's
 * OpenAPI document (src/schema.d.ts; `npm run generate` regenerates them).
 *
 * It talks to the API the way the MemLayer SPA does: JSON on every call, the access
 * token from localStorage as `Authorization: Bearer`, and errors read from `detail`.
 */
import createClient, { type Client } from "openapi-fetch";

import type { components, paths } from "./schema";

export type { components, paths } from "./schema";

type Schemas = components["schemas"];
export type TokenResponse = Schemas["TokenResponse"];
export type UserResponse = Schemas["UserResponse"];
export type ChatResponse = Schemas["ChatResponse"];
export type MessageResponse = Schemas["MessageResponse"];
export type Role = Schemas["Role"];
export type ErrorBody = Schemas["ErrorBody"];
export type ValidationErrorBody = Schemas["ValidationErrorBody"];

/** The localStorage key the access token is kept under. */
export const TOKEN_KEY = "memlayer.access_token";

/** The typed client: `client.GET("/chats")`, `client.POST("/chats/{chat_id}/messages", …)`. */
export type MemLayerClient = Client<paths>;

/** Where the access token lives; `localStorage` in a browser. */
export interface TokenStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/**
 * A client for the API at `baseUrl` (e.g. `http://localhost:8000`) that sends
 * `Content-Type: application/json` on every call and the stored token, if any.
 */
export function createMemLayerClient(baseUrl: string, tokens: TokenStore = localStorage): MemLayerClient {
  const client = createClient<paths>({
    baseUrl,
    headers: { "Content-Type": "application/json" },
  });
  client.use({
    onRequest({ request }) {
      const token = tokens.getItem(TOKEN_KEY);
      if (token) request.headers.set("Authorization", `Bearer ${token}`);
      return request;
    },
  });
  return client;
}

/**
 * What to show a user for a failed call, as the SPA does: a string `detail` as is,
 * any other `detail` (a 422's list of problems) as JSON, and for a body that is not
 * JSON only the status.
 */
export function errorDetail(body: unknown, status: number): string {
  if (typeof body === "object" && body !== null && "detail" in body) {
    const detail = (body as { detail: unknown }).detail;
    return typeof detail === "string" ? detail : JSON.stringify(detail);
  }
  return `Request failed (${status})`;
}
