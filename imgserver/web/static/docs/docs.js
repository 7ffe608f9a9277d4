// The API reference page: Swagger UI (vendored, see ../vendor/swagger-ui/README.md) over
// this service's own /openapi.json. No file comes from another origin.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  docExpansion: "none", // one section per graph: keep them folded
  filter: true, // a box to find a graph or an operation by name
  defaultModelsExpandDepth: 0,
  validatorUrl: null, // never ask swagger.io to validate the document
  tryItOutEnabled: false,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
