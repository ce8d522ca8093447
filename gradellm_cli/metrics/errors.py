"""The one error the metrics raise when a metric is undefined for a record."""

from __future__ import annotations

from ..errors import EXIT_BAD_INPUT, GradellmError


class MetricError(GradellmError):
    """A metric is undefined for this record (all-zero scores, Delta_0 = 0, ...).

    The reason is one line; the evaluate command turns it into an error record, never a number.
    """

    exit_code = EXIT_BAD_INPUT
