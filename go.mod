module github.com/berth-registry/berth

go 1.26.8

require (
	github.com/distribution/reference v0.6.0
	github.com/google/uuid v1.6.0
	github.com/gorilla/mux v1.8.1
	github.com/opencontainers/go-digest v1.0.0
	github.com/opencontainers/image-spec v1.1.1
	gopkg.in/yaml.v3 v3.0.1
)
