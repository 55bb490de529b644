"""influxdb-client escapes the line protocol, but only processes that write load it."""

from __future__ import annotations

import subprocess
import sys

from cityos.adapters.influxdb.lineprotocol import QUALITY_FIELDS, library_point
from cityos.platform.domain.model import Quality


def test_quality_fields_are_what_the_library_writes() -> None:
    for quality in Quality:
        line = library_point("m").field("quality", quality.value).to_line_protocol()
        assert QUALITY_FIELDS[quality] == line.removeprefix("m ")


def test_a_reading_process_does_not_load_the_library() -> None:
    # ~10 MB of memory in the API server, which serves exports and never writes
    code = (
        "import sys\n"
        "import cityos.adapters.influxdb.store, cityos.platform.api.app\n"
        "assert 'influxdb_client' not in sys.modules, 'loaded at import'\n"
        "from cityos.adapters.influxdb.lineprotocol import series_key\n"
        "series_key('d.q', None)\n"
        "assert 'influxdb_client' in sys.modules, 'not loaded when writing'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
