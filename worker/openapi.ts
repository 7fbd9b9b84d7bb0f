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
      "/api/clients/{id}": {
        get: {
          summary: "A client's session: online, gateway, subscriptions, queued count",
          parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
          responses: { "200": { description: "the session" }, ...errors(401, 404) },
        },
        delete: {
          summary: "Disconnect the client (DISCONNECT 0x98) and drop its session",
          parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
          responses: { "200": { description: "dropped" }, ...errors(401, 404) },
        },
      },
      "/api/stats": {
        get: {
          summary:
            "Connections, subscriptions, messages and bytes, retained, dropped and expired, per shard and gateway; per rule: matched, sent, failed, dead-lettered, dropped, waiting",
          responses: { "200": { description: "statistics" }, ...errors(401) },
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
