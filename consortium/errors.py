"""The two kinds of error: a peer's bad input (remote) and a violated rule of our own (local).

Anything that comes off the bus or the disk is either accepted or rejected with a `RemoteError`
subclass; no other exception may escape a decoder or a validator for bad input.
"""


class RemoteError(Exception):
    """Input from outside (bus, disk, CLI file) is malformed, forged or breaks a rule."""


class CodecError(RemoteError):
    """Bytes that are not one canonical, well-typed, size-limited msgpack value."""


class CodecLimitError(CodecError):
    """Bytes refused for their size alone: too long, or an array or map with too many items."""


class SignatureError(RemoteError):
    """A signature does not verify under the claimed key."""


class ConfigError(RemoteError):
    """`nodes.yaml` (or a key file it points at) is malformed; the message names the field."""


class LocalError(Exception):
    """Our own invariant was broken: a bug, never caused by input."""
