/**
 * A small page that calls the MemLayer API exactly as the SPA does (through the typed
 * client: JSON on every call, the token from localStorage, `detail` from error bodies)
 * and reports what it received. The browser test drives it through `window.memlayer`.
 */
import {
  TOKEN_KEY,
  type AdminUserChange,
  type UpdateChatRequest,
  createMemLayerClient,
  errorDetail,
  highlightedPieces,
  resumeReply,
  stopReply,
  streamEdit,
  streamMessage,
  streamRegenerate,
  usageFigure,
  type ReplyEvent,
  type StreamedReply,
} from "../src/index";

const api = new URLSearchParams(location.search).get("api") ?? "http://localhost:8000";
const client = createMemLayerClient(api);

/** What the page received from one call. */
export interface Outcome<T> {
  status: number;
  data?: T;
  detail?: string;
}

async function outcome<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<Outcome<T>> {
  const { data, error, response } = await call;
  const result: Outcome<T> = { status: response.status };
  if (data !== undefined) result.data = data;
  if (error !== undefined) result.detail = errorDetail(error, response.status);
  const line = document.createElement("div");
  line.textContent = `${response.status} ${response.url} ${result.detail ?? ""}`;
  document.getElementById("log")?.append(line);
  return result;
}

function remember<T extends { access_token: string }>(result: Outcome<T>): Outcome<T> {
  if (result.data) localStorage.setItem(TOKEN_KEY, result.data.access_token);
  return result;
}

const chat = (chat_id: string) => ({ params: { path: { chat_id } } });
const message = (chat_id: string, message_id: string) => ({ params: { path: { chat_id, message_id } } });
const folder = (folder_id: string) => ({ params: { path: { folder_id } } });
const account = (user_id: string) => ({ params: { path: { user_id } } });

/** Shows search hits as a user sees them: each snippet with its matches in <mark>. */
function showHits(hits: { chat_id: string; message_id?: string | null; snippet: string; highlights: number[][] }[]) {
  const list = document.getElementById("hits");
  if (!list) return;
  list.replaceChildren(
    ...hits.map((hit) => {
      const item = document.createElement("li");
      item.dataset["chatId"] = hit.chat_id;
      item.dataset["messageId"] = hit.message_id ?? "";
      for (const piece of highlightedPieces(hit)) {
        const node = piece.match ? document.createElement("mark") : document.createElement("span");
        node.textContent = piece.text;
        item.append(node);
      }
      item.addEventListener("click", () => void openHit(hit.chat_id, hit.message_id ?? null));
      return item;
    }),
  );
}

/** Opens a hit as a user would: its chat's title and messages, the hit's message marked. */
async function openHit(chatId: string, messageId: string | null) {
  const opened = document.getElementById("opened");
  if (!opened) return;
  const [{ data: found }, { data: messages }] = await Promise.all([
    client.GET("/chats/{chat_id}", chat(chatId)),
    client.GET("/chats/{chat_id}/messages", chat(chatId)),
  ]);
  const heading = document.createElement("h2");
  heading.textContent = found?.title ?? "";
  const lines = (messages ?? []).map((message) => {
    const line = document.createElement("p");
    line.textContent = `${message.role}: ${message.content}`;
    if (message.id === messageId) line.className = "hit";
    return line;
  });
  opened.replaceChildren(heading, ...lines);
  opened.dataset["chatId"] = chatId;
}

const page = {
  register: async (email: string, password: string) =>
    remember(await outcome(client.POST("/auth/register", { body: { email, password } }))),
  login: async (email: string, password: string) =>
    remember(await outcome(client.POST("/auth/login", { body: { email, password } }))),
  me: () => outcome(client.GET("/auth/me")),
  createChat: (title?: string | null) =>
    outcome(client.POST("/chats", { body: title === undefined ? {} : { title } })),
  listChats: (query: { archived?: boolean; folder_id?: string; limit?: number; cursor?: string } = {}) =>
    outcome(client.GET("/chats", { params: { query } })),
  getChat: (id: string) => outcome(client.GET("/chats/{chat_id}", chat(id))),
  renameChat: (id: string, title: string) =>
    outcome(client.PATCH("/chats/{chat_id}", { ...chat(id), body: { title } })),
  updateChat: (id: string, body: UpdateChatRequest) =>
    outcome(client.PATCH("/chats/{chat_id}", { ...chat(id), body })),
  deleteChat: (id: string) => outcome(client.DELETE("/chats/{chat_id}", chat(id))),
  listFolders: () => outcome(client.GET("/folders")),
  createFolder: (name: string) => outcome(client.POST("/folders", { body: { name } })),
  renameFolder: (id: string, name: string) =>
    outcome(client.PATCH("/folders/{folder_id}", { ...folder(id), body: { name } })),
  deleteFolder: (id: string) => outcome(client.DELETE("/folders/{folder_id}", folder(id))),
  /** Searches, shows the hits on the page (matches in <mark>), and reports them. */
  search: async (q: string, sort?: "newest" | "relevance") => {
    const result = await outcome(client.GET("/search", { params: { query: sort ? { q, sort } : { q } } }));
    if (result.data) showHits(result.data);
    return result;
  },
  postMessage: (id: string, content: string) =>
    outcome(client.POST("/chats/{chat_id}/messages", { ...chat(id), body: { content } })),
  listMessages: (id: string) => outcome(client.GET("/chats/{chat_id}/messages", chat(id))),
  regenerate: (id: string, messageId: string) =>
    outcome(client.POST("/chats/{chat_id}/messages/{message_id}/regenerate", message(id, messageId))),
  edit: (id: string, messageId: string, content: string) =>
    outcome(client.POST("/chats/{chat_id}/messages/{message_id}/edit", { ...message(id, messageId), body: { content } })),
  setActive: (id: string, message_id: string) =>
    outcome(client.PUT("/chats/{chat_id}/active", { ...chat(id), body: { message_id } })),
  tree: (id: string) => outcome(client.GET("/chats/{chat_id}/tree", chat(id))),
  deleteMessage: (id: string, messageId: string) =>
    outcome(client.DELETE("/chats/{chat_id}/messages/{message_id}", message(id, messageId))),
  /** Regenerates or edits with the answer streamed; reports the events. */
  streamRegenerate: async (id: string, messageId: string) => {
    const events: { event: string; data: unknown }[] = [];
    const result = await streamRegenerate(api, id, messageId, ({ event, data }) => events.push({ event, data }));
    return { ...result, events };
  },
  streamEdit: async (id: string, messageId: string, content: string) => {
    const events: { event: string; data: unknown }[] = [];
    const result = await streamEdit(api, id, messageId, content, ({ event, data }) => events.push({ event, data }));
    return { ...result, events };
  },
  /** Streams a reply; reports every event with the time it arrived (ms since the post). */
  streamMessage: async (id: string, content: string) => {
    const start = performance.now();
    const events: { event: string; data: unknown; at: number }[] = [];
    const result = await streamMessage(api, id, content, ({ event, data }) => {
      events.push({ event, data, at: performance.now() - start });
    });
    return { ...result, events };
  },
  /**
   * Posts `content` streamed and answers once the first piece arrived (the reply's id,
   * the last event id and the text so far), leaving the stream open: a reload then cuts
   * it mid-reply. `pendingReply` is how that stream ended.
   */
  startReply: (id: string, content: string) =>
    new Promise<{ replyId: string | undefined; lastEventId: number | undefined; text: string }>((resolve) => {
      const events: ReplyEvent[] = [];
      let text = "";
      let replyId: string | undefined;
      pending = streamMessage(api, id, content, (event) => {
        events.push(event);
        if (event.event === "reply") replyId = event.data.id;
        if (event.event === "delta") text += event.data.content;
        if (event.event !== "message" && event.event !== "reply" && event.event !== "title") {
          resolve({ replyId, lastEventId: event.id, text });
        }
      }).then((result) => ({ ...result, events }));
    }),
  pendingReply: () => pending,
  /** Resumes a reply's stream from `lastEventId`; reports the events. */
  resumeReply: async (id: string, replyId: string, lastEventId?: number) => {
    const events: ReplyEvent[] = [];
    const result = await resumeReply(api, id, replyId, lastEventId, (event) => events.push(event));
    return { ...result, events };
  },
  stopReply: (id: string, replyId: string) => stopReply(client, id, replyId),
  changePassword: async (current_password: string, new_password: string) =>
    remember(await outcome(client.POST("/auth/password", { body: { current_password, new_password } }))),
  logoutAll: () => outcome(client.POST("/auth/logout-all")),
  deleteAccount: (password: string) => outcome(client.DELETE("/auth/me", { body: { password } })),
  exportAccount: () => outcome(client.GET("/auth/me/export")),
  /** Reads today's usage and shows it on the page (#usage), as the SPA's header would. */
  usage: async () => {
    const result = await outcome(client.GET("/auth/me/usage"));
    const figure = document.getElementById("usage");
    if (figure && result.data) figure.textContent = usageFigure(result.data);
    return result;
  },
  adminListUsers: (q?: string) => outcome(client.GET("/admin/users", { params: { query: q ? { q } : {} } })),
  adminCreateUser: (email: string, password: string) =>
    outcome(client.POST("/admin/users", { body: { email, password } })),
  adminUpdateUser: (id: string, body: AdminUserChange) =>
    outcome(client.PATCH("/admin/users/{user_id}", { ...account(id), body })),
  adminDeleteUser: (id: string) => outcome(client.DELETE("/admin/users/{user_id}", account(id))),
  /** Replaces the stored token (null logs out), as the SPA's session handling would. */
  useToken: (token: string | null) =>
    token === null ? localStorage.removeItem(TOKEN_KEY) : localStorage.setItem(TOKEN_KEY, token),
};

declare global {
  interface Window {
    memlayer: typeof page;
  }
}

let pending: Promise<StreamedReply & { events: ReplyEvent[] }> | undefined;

window.memlayer = page;
document.body.dataset["ready"] = "true";
