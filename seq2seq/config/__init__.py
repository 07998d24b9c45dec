"""Structured configs: every option, its type and its default, in one place, and one check per schema.

The package has one file per job, and ``from seq2seq.config import X`` reaches every public name:

- :mod:`~seq2seq.config.schemas`: the dataclasses (one per command, :data:`SCHEMAS`; the shared
  :class:`DecodingConfig` of eval, translate, gather and serve) and every default;
- :mod:`~seq2seq.config.checks`: the ``check_*`` function of each schema, which names the valid
  options of what a type cannot express; the library constructors trust a checked config;
- :mod:`~seq2seq.config.naming`: names made from a config (``describe_model``, ``short_name``, ...);
- :mod:`~seq2seq.config.resume`: what a resumed run must keep; old saved configs with new defaults;
- :mod:`~seq2seq.config.registration`: the config folder (:func:`config_dir`) and the schemas in
  Hydra's ConfigStore (:func:`register_configs`), whose YAML groups there (``data/``,
  ``model/``, ``model/attention/``, ``trainer/``) only pick values.

It imports nothing of the package but :mod:`seq2seq.constants` and :mod:`seq2seq.errors`.
"""

from seq2seq.config.checks import (
    as_container,
    check_average,
    check_choice,
    check_compare,
    check_data,
    check_decoding,
    check_eval,
    check_export,
    check_gather,
    check_known,
    check_model,
    check_prepare,
    check_search,
    check_serve,
    check_train,
    check_trainer,
    check_translate,
    checkpoint_files,
    compared_models,
    length_buckets,
    require,
    run_folders,
    train_splits,
    unknown_options,
)
from seq2seq.config.naming import (
    attention_name,
    decoder_name,
    describe_model,
    folder_name,
    short_name,
    uses_attention,
)
from seq2seq.config.registration import config_dir, register_configs
from seq2seq.config.resume import known_options, resume_mismatch, saved_model_config, with_defaults
from seq2seq.config.schemas import (
    LENGTH_BUCKET_EDGES,
    LONGEST,
    SCHEMAS,
    AttentionConfig,
    AverageConfig,
    CompareConfig,
    DataConfig,
    DecodingConfig,
    EvalConfig,
    ExportConfig,
    GatherConfig,
    ModelConfig,
    PrepareConfig,
    SearchConfig,
    SelfAttentionConfig,
    ServeConfig,
    TokenizerConfig,
    TrainConfig,
    TrainerConfig,
    TranslateConfig,
    nested_schema,
)

__all__ = [
    "LENGTH_BUCKET_EDGES",
    "LONGEST",
    "SCHEMAS",
    "AttentionConfig",
    "AverageConfig",
    "CompareConfig",
    "DataConfig",
    "DecodingConfig",
    "EvalConfig",
    "ExportConfig",
    "GatherConfig",
    "ModelConfig",
    "PrepareConfig",
    "SearchConfig",
    "SelfAttentionConfig",
    "ServeConfig",
    "TokenizerConfig",
    "TrainConfig",
    "TrainerConfig",
    "TranslateConfig",
    "as_container",
    "attention_name",
    "check_average",
    "check_choice",
    "check_compare",
    "check_data",
    "check_decoding",
    "check_eval",
    "check_export",
    "check_gather",
    "check_known",
    "check_model",
    "check_prepare",
    "check_search",
    "check_serve",
    "check_train",
    "check_trainer",
    "check_translate",
    "checkpoint_files",
    "compared_models",
    "config_dir",
    "decoder_name",
    "describe_model",
    "folder_name",
    "known_options",
    "length_buckets",
    "nested_schema",
    "register_configs",
    "require",
    "resume_mismatch",
    "run_folders",
    "saved_model_config",
    "short_name",
    "train_splits",
    "unknown_options",
    "uses_attention",
    "with_defaults",
]
