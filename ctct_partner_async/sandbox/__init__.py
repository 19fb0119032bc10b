"""A local emulator of Constant Contact's technology-partner API, its token endpoint and the v2 plan
endpoint, with scripted faults and introspection. It imports nothing from the rest of the SDK: it speaks
raw JSON shaped like the vendor's Swagger contract, so a serialization bug cannot sit on both sides.

Use it in tests::

    async with run_sandbox(SandboxConfig(rate_limit=0)) as sb:
        ...  # talk to sb.base_url / sb.token_url with the credentials in sb.sandbox.config
        assert sb.sandbox.accounts()[0]["billing_status"] == "Trial"

or from a shell: ``python -m ctct_partner_async.sandbox --port 8911``.
"""

from __future__ import annotations

from .config import Faults, SandboxConfig
from .server import SANDBOX_KEY, SandboxHandle, create_app, run_sandbox
from .state import Sandbox

__all__ = ["SANDBOX_KEY", "Faults", "Sandbox", "SandboxConfig", "SandboxHandle", "create_app", "run_sandbox"]
