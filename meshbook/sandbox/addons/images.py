"""The images the sandbox's registry knows: ENTRYPOINT and CMD of their image configs.

The webhook reads a container's image config from its registry when the container has no `command`
(vault-env must be told what to run). The sandbox has no registry, so this table is its registry: an
image not in it is answered as the webhook's registry client answers when the registry cannot be
reached. Entries are the images' published configs (repository without tag; one config per repository).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageConfig:
    """The part of an OCI image config the webhook uses."""

    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]


IMAGE_CONFIGS: dict[str, ImageConfig] = {
    "docker.io/library/busybox": ImageConfig((), ("sh",)),
    "docker.io/library/alpine": ImageConfig((), ("/bin/sh",)),
    "docker.io/library/ubuntu": ImageConfig((), ("/bin/bash",)),
    "docker.io/library/debian": ImageConfig((), ("bash",)),
    "docker.io/library/nginx": ImageConfig(("/docker-entrypoint.sh",), ("nginx", "-g", "daemon off;")),
    "docker.io/hashicorp/vault": ImageConfig(("docker-entrypoint.sh",), ("server", "-dev")),
    "docker.io/openbao/openbao": ImageConfig(("docker-entrypoint.sh",), ("server", "-dev")),
    "quay.io/openbao/openbao": ImageConfig(("docker-entrypoint.sh",), ("server", "-dev")),
    "ghcr.io/bank-vaults/bank-vaults": ImageConfig(("bank-vaults",), ()),
    "ghcr.io/bank-vaults/vault-env": ImageConfig(("vault-env",), ()),
    "ghcr.io/bank-vaults/vault-operator": ImageConfig(("vault-operator",), ()),
    "ghcr.io/bank-vaults/vault-secrets-webhook": ImageConfig(("vault-secrets-webhook",), ()),
}


class RegistryUnreachable(Exception):
    """What go-containerregistry reports when the image's registry does not answer (no network)."""


def _repository(image: str) -> tuple[str, str]:
    """`busybox:1.36` -> (`docker.io/library/busybox`, registry host `index.docker.io`), as
    go-containerregistry's name.ParseReference normalises a reference."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = "docker.io", name
    if host == "docker.io" and "/" not in path:
        path = f"library/{path}"
    registry = "index.docker.io" if host == "docker.io" else host
    return f"{host}/{path}", registry


def image_config(image: str) -> ImageConfig:
    """The image's ENTRYPOINT and CMD; raises RegistryUnreachable for an image the table lacks."""
    repository, registry = _repository(image)
    config = IMAGE_CONFIGS.get(repository)
    if config is None:
        raise RegistryUnreachable(
            f'cannot fetch image descriptor: Get "https://{registry}/v2/": dial tcp: lookup {registry}: no such host'
        )
    return config
