# matssl: does self-supervised pretraining help your property, and by how much?
# The stages live in workflow/rules/; the logic lives in src/matssl (the `matssl` command line).


# The demo config, unless the command line names one (`--configfile my.yaml` replaces it, never merges into it:
# a 4-property config must not gain the demo's property); `--config key=value` still edits whichever is in use.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/probes.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        PLAN.report_target,
        [PLAN.property_target(p) for p in PLAN.cfg.properties],
        [PLAN.prediction_target(p) for p in PLAN.cfg.predict],
