// Package docs holds documents that the server serves as they are.
package docs

import _ "embed"

// OpenAPI is docs/openapi.yaml, the OpenAPI 3.1 description of the public
// REST API and of the admin plane, served at GET /api/v1/openapi.yaml. A test
// in internal/httpd keeps its paths equal to the route tables.
//
//go:embed openapi.yaml
var OpenAPI []byte
