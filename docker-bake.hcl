// docker buildx bake: the CPU image (linux/amd64 + linux/arm64, one manifest list) and the GPU
// image (linux/amd64, tag suffix -gpu). `docker buildx bake --print` shows the resolved build.
//
// CI passes docker/metadata-action's bake files after this one: they redefine the
// docker-metadata-action* targets (tags and labels), which the image targets inherit.

variable "REGISTRY" {
  // Replace `owner` (lowercase), or set REGISTRY=ghcr.io/<owner> in the environment.
  default = "ghcr.io/owner"
}
variable "IMAGE" {
  default = "ember-serve"
}
variable "VERSION" {
  default = "dev"
}
variable "REVISION" {
  default = ""
}
variable "CREATED" {
  default = ""
}
// The model repository the images compile in: a directory of the build context with one
// directory per model (model.onnx + config.json). README.md, "Ship your model".
variable "MODEL_REPOSITORY" {
  default = "weights"
}
// Base images: exact tags; docs/RELEASING.md ("Pinning base images") says how to pin digests.
variable "BUILDER_IMAGE" {
  default = "rust:1.95.0-slim-bookworm"
}
variable "RUNTIME_IMAGE" {
  default = "gcr.io/distroless/cc-debian12:nonroot"
}
variable "GPU_RUNTIME_IMAGE" {
  default = "debian:bookworm-slim"
}

group "default" {
  targets = ["cpu", "gpu"]
}

// Overridden by docker/metadata-action in CI; local builds get ${VERSION} tags from here.
target "docker-metadata-action" {
  tags = ["${REGISTRY}/${IMAGE}:${VERSION}"]
}
target "docker-metadata-action-gpu" {
  tags = ["${REGISTRY}/${IMAGE}:${VERSION}-gpu"]
}

target "_common" {
  context = "."
  args = {
    BUILDER_IMAGE    = BUILDER_IMAGE
    MODEL_REPOSITORY = MODEL_REPOSITORY
    VERSION          = VERSION
    REVISION      = REVISION
    CREATED       = CREATED
  }
}

target "cpu" {
  inherits   = ["_common", "docker-metadata-action"]
  dockerfile = "docker/Dockerfile"
  platforms  = ["linux/amd64", "linux/arm64"]
  args = {
    RUNTIME_IMAGE = RUNTIME_IMAGE
  }
}

target "gpu" {
  inherits   = ["_common", "docker-metadata-action-gpu"]
  dockerfile = "docker/Dockerfile.gpu"
  platforms  = ["linux/amd64"]
  args = {
    GPU_RUNTIME_IMAGE = GPU_RUNTIME_IMAGE
  }
}
