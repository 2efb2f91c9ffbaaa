// Starts Swagger UI on /docs. A file of its own rather than FastAPI's inline script, so that the page's
// Content-Security-Policy can forbid inline script; the page says where the OpenAPI document is.
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // The online validator's badge would be fetched from the internet: firms' networks are often closed.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
