"""The local Triton model directory: engine parameters survive config.pbtxt unchanged.

Chat templates and stop strings hold quotes, backslashes and newlines; the text format
must carry them through exactly once-escaped (the model reads them back verbatim).
"""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from tierserve.engine.engines import EngineArgs
from tierserve.engine.triton import TritonSpec, local_model_files

TEMPLATE = ('{% for m in messages %}Question: {{ m["content"] }}\\n'
            "Answer:{% endfor %}\n\t'quoted' \"twice\"")


def test_parameters_round_trip_through_the_text_format(tmp_path: Path) -> None:
    args = EngineArgs(engine="llamacpp", model="file:///m.gguf", threads=1,
                      chat_template=TEMPLATE, stop=("\n", '"end"'))
    spec = TritonSpec(profile="", served_name="gemma", workdir=tmp_path, http_port=1,
                      grpc_port=2, metrics_port=3, engine=args)
    cfg = text_format.Parse(local_model_files(spec)["config.pbtxt"],
                            model_config_pb2.ModelConfig())
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    assert params["chat_template"] == TEMPLATE
    assert json.loads(params["stop"]) == ["\n", '"end"']
    assert params["engine"] == "llamacpp"
    assert params["served_name"] == "gemma"
