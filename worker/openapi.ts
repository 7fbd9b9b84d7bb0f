/** The OpenAPI 3.1 description of the HTTP API, served at /api/openapi.json. */
export function openApiDocument() {
  const error = { $ref: "#/components/schemas/Error" };
  const errors = (...codes: number[]) =>
    Object.fromEntries(
      codes.map((c) => [
        String(c),
        { description: "error", content: { "application/json": { schema: error } } },
      ]),
    );
  const USER_NAME = {
    name: "name",
    in: "path",
    required: true,
    description: "percent-encoded: 1 to 256 UTF-8 bytes, no control characters (a%2Fb is the user a/b)",
    schema: { type: "string" },
  };
  return {
    openapi: "3.1.0",
    info: { title: "Nimbus MQTT broker HTTP API", version: "0.1.0" },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: {
        Error: {
          type: "object",
          required: ["error", "status"],
          properties: { error: { type: "string" }, status: { type: "integer" } },
        },
        User: {
          type: "object",
          required: ["name", "source"],
          description:
            "A user of the store, or of MQTT_PASSWORDS (which wins for a name in both); never the hash",
          properties: {
            name: { type: "string" },
            source: { type: "string", enum: ["store", "MQTT_PASSWORDS"] },
            created: { type: "string", format: "date-time" },
            updated: { type: "string", format: "date-time" },
          },
        },
        PasswordHash: {
          type: "string",
          description: "pbkdf2-sha256:100000:<salt, 16 to 64 bytes, base64>:<hash, 32 bytes, base64>",
          pattern: "^pbkdf2-sha256:100000:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$",
        },
      },
    },
    security: [{ bearer: [] }],
    paths: {
      "/api/publish": {
        post: {
          summary: "Publish a message; QoS 1/2 answer once it is handed on durably",
          requestBody: {
            required: true,
            content: {
              "application/json": {
                schema: {
                  type: "object",
                  required: ["topic"],
                  properties: {
                    topic: { type: "string" },
                    payload: { description: "text (or JSON, sent as its text)" },
                    payloadBase64: { type: "string" },
                    qos: { type: "integer", enum: [0, 1, 2] },
                    retain: { type: "boolean" },
                    properties: {
                      type: "object",
                      description:
                        "MQTT 5.0 properties: contentType, responseTopic, correlationData, payloadFormatIndicator, messageExpiryInterval, userProperties ([[key, value], …])",
                    },
                  },
                },
              },
            },
          },
          responses: { "200": { description: "published" }, ...errors(400, 401, 403, 503, 507) },
        },
      },
      "/api/retained": {
        get: {
          summary: "Retained messages matching a topic filter",
          parameters: [{ name: "filter", in: "query", schema: { type: "string", default: "#" } }],
          responses: { "200": { description: "a list of messages" }, ...errors(400, 401) },
        },
      },
      "/api/clients": {
        get: {
          summary:
            "A page of the clients connected now whose client id starts with prefix, in id order within each gateway, gateway after gateway; a page asks at most 16 gateways, so it may be short with more to come: go on while next is not null",
          parameters: [
            { name: "prefix", in: "query", schema: { type: "string", maxLength: 1024, default: "" } },
            {
              name: "limit",
              in: "query",
              schema: { type: "integer", minimum: 1, maximum: 100, default: 50 },
            },
            {
              name: "cursor",
              in: "query",
              description: "next of the page before, with the same prefix",
              schema: { type: "string" },
            },
          ],
          responses: {
            "200": {
              description: "{clients: [{clientId, owner, persistent, gateway}], next: cursor or null}",
            },
            ...errors(400, 401),
          },
        },
      },
      "/api/clients/{id}": {
        get: {
          summary: "A client's session: online, gateway, subscriptions, queued count",
          parameters: [
            {
              name: "id",
              in: "path",
              required: true,
              description: "the client id, percent-encoded as one segment (400 when not well-formed)",
              schema: { type: "string" },
            },
          ],
          responses: { "200": { description: "the session" }, ...errors(400, 401, 404) },
        },
        delete: {
          summary: "Disconnect the client (DISCONNECT 0x98) and drop its session",
          parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
          responses: { "200": { description: "dropped" }, ...errors(400, 401, 404) },
        },
      },
      "/api/users": {
        get: {
          summary:
            "A page of the store's users (not MQTT_PASSWORDS'), by bucket then name; a page may be short with more to come: go on while next is not null",
          parameters: [
            {
              name: "limit",
              in: "query",
              schema: { type: "integer", minimum: 1, maximum: 1000, default: 100 },
            },
            {
              name: "cursor",
              in: "query",
              description: "next of the page before",
              schema: { type: "string" },
            },
          ],
          responses: {
            "200": {
              description: "users, and the cursor of the next page (null: the last)",
              content: {
                "application/json": {
                  schema: {
                    type: "object",
                    properties: {
                      users: { type: "array", items: { $ref: "#/components/schemas/User" } },
                      next: { type: ["string", "null"] },
                    },
                  },
                },
              },
            },
            ...errors(400, 401),
          },
        },
        post: {
          summary:
            "Import a page of users with precomputed hashes (at most 1,000 users and 2 MiB); existing ones are replaced",
          requestBody: {
            required: true,
            content: {
              "application/json": {
                schema: {
                  type: "object",
                  required: ["users"],
                  properties: {
                    users: {
                      type: "array",
                      maxItems: 1000,
                      items: {
                        type: "object",
                        required: ["name", "hash"],
                        properties: {
                          name: { type: "string" },
                          hash: { $ref: "#/components/schemas/PasswordHash" },
                        },
                      },
                    },
                  },
                },
              },
            },
          },
          responses: { "200": { description: "{created, replaced}" }, ...errors(400, 401, 409, 413) },
        },
      },
      "/api/users/{name}": {
        get: {
          summary: "A user, without its hash",
          parameters: [USER_NAME],
          responses: {
            "200": {
              description: "the user",
              content: { "application/json": { schema: { $ref: "#/components/schemas/User" } } },
            },
            ...errors(400, 401, 404),
          },
        },
        put: {
          summary:
            "Add or replace a user: a password (hashed by the broker, at most 1,024 bytes) or a precomputed hash; its logins are checked in full again",
          parameters: [USER_NAME],
          requestBody: {
            required: true,
            description: "at most 8 KiB",
            content: {
              "application/json": {
                schema: {
                  oneOf: [
                    { type: "object", required: ["password"], properties: { password: { type: "string" } } },
                    {
                      type: "object",
                      required: ["hash"],
                      properties: { hash: { $ref: "#/components/schemas/PasswordHash" } },
                    },
                  ],
                },
              },
            },
          },
          responses: {
            "200": { description: "replaced" },
            "201": { description: "created" },
            ...errors(400, 401, 409, 413),
          },
        },
        delete: {
          summary: "Remove a user: its next login is refused (connected clients stay connected)",
          parameters: [USER_NAME],
          responses: { "200": { description: "removed" }, ...errors(400, 401, 404, 409) },
        },
      },
      "/api/stats": {
        get: {
          summary:
            "Connections, subscriptions, messages and bytes, retained, dropped and expired, per shard and gateway; per rule: matched, sent, failed, dead-lettered, dropped, waiting",
          parameters: [
            {
              name: "max_age",
              in: "query",
              description:
                "milliseconds: a collection started that long ago will do (shared with other callers); 0, the default, collects after the request arrived",
              schema: { type: "integer", minimum: 0, maximum: 60000, default: 0 },
            },
          ],
          responses: { "200": { description: "statistics" }, ...errors(400, 401) },
        },
      },
      "/api/bridges": {
        get: {
          summary:
            "Each bridge of BRIDGES: its state and counters (asking starts a bridge that is not running)",
          responses: { "200": { description: "bridges" }, ...errors(401) },
        },
      },
      "/metrics": {
        get: {
          summary: "The same numbers in Prometheus text format",
          responses: { "200": { description: "metrics" } },
        },
      },
    },
  };
}
