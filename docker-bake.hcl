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
// Only the base-image comparison (group "compare") uses these two.
variable "UBUNTU_IMAGE" {
  default = "ubuntu:24.04"
}
variable "ALPINE_IMAGE" {
  default = "alpine:3.22"
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

// The base-image comparison (benches/base-images.sh; the workflow's manual compare-bases job):
// the CPU image's binary and weights on four runtimes, for both architectures. No release
// builds or pushes these.
group "compare" {
  targets = ["compare-distroless", "compare-debian-slim", "compare-ubuntu", "compare-alpine"]
}

target "_compare" {
  inherits   = ["_common"]
  dockerfile = "docker/Dockerfile"
  platforms  = ["linux/amd64", "linux/arm64"]
}

// The release image itself (the Dockerfile's last stage), under a comparison tag.
target "compare-distroless" {
  inherits = ["_compare"]
  tags     = ["${REGISTRY}/${IMAGE}:compare-distroless"]
  args = {
    RUNTIME_IMAGE = RUNTIME_IMAGE
  }
}

target "compare-debian-slim" {
  inherits = ["_compare"]
  target   = "debian-slim"
  tags     = ["${REGISTRY}/${IMAGE}:compare-debian-slim"]
  args = {
    GPU_RUNTIME_IMAGE = GPU_RUNTIME_IMAGE
  }
}

target "compare-ubuntu" {
  inherits = ["_compare"]
  target   = "ubuntu"
  tags     = ["${REGISTRY}/${IMAGE}:compare-ubuntu"]
  args = {
    UBUNTU_IMAGE = UBUNTU_IMAGE
  }
}

// A static musl binary: no glibc needed, so Alpine's musl is never even used. flex only:
// mimalloc is C built against glibc's headers.
target "compare-alpine" {
  inherits = ["_compare"]
  target   = "alpine"
  tags     = ["${REGISTRY}/${IMAGE}:compare-alpine"]
  args = {
    ALPINE_IMAGE = ALPINE_IMAGE
    LIBC         = "musl"
    FEATURES     = "flex"
  }
}
