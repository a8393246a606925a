# One finetuning run per property x method x fold x label fraction x seed, and the per-property summary.


rule finetune:
    input:
        stage_inputs("finetune"),
    output:
        stage_outputs("finetune"),
    log:
        f"{RESULTS}/logs/finetune/{{key}}.log",
    conda:
        ENV
    threads: PLAN.cfg.threads
    resources:
        gpu=1,
        # all of a foundation model training with the head (train: all): 5.2 GB at batch 64 (bench/foundation_speed.py)
        mem_mb=lambda wc: (
            16000 if plan().get("finetune", wc.key).params.get("foundation") else 4000
        ),
        runtime=60,
    params:
        spec=stage_spec("finetune"),
        dir=stage_dir("finetune"),
    shell:
        "python -m matssl.cli stage finetune --spec {params.spec:q} --out {params.dir:q} --threads {threads} --gpus {resources.gpu:q} > {log:q} 2>&1"


rule property:
    input:
        lambda wc: [s.done for s in plan().finetune[wc.prop]],
        spec=lambda wc: summary_spec(
            f"property-{wc.prop}",
            plan().property_spec(wc.prop),
            PLAN.property_target(wc.prop),
        ),
    output:
        f"{RESULTS}/properties/{{prop}}.json",
    log:
        f"{RESULTS}/logs/properties/{{prop}}.log",
    conda:
        ENV
    params:
        code=code_fingerprint("property"),
    shell:
        "python -m matssl.cli property --spec-file {input.spec:q} --out {output:q} > {log:q} 2>&1"
