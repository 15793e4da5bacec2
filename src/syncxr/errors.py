"""User-facing errors. The CLI turns a UserError into one clear message and exit code 2."""


class UserError(Exception):
    """Bad input from the user: say what was wrong, where, what was expected and how to fix it."""


class SampleError(Exception):
    """One sample's content failure (an unparsable answer, a malformed output): a stage turns it
    into a reject with `reason`, and the run goes on."""

    reason = "sample_error"


class InfrastructureError(Exception):
    """The machinery failed, not the sample (server unreachable after retries, out of memory):
    the shard fails and nothing final is written, so a rerun does it again."""

    reason = "infrastructure_error"
