# The leakage guard: the pool structures that are downstream test structures, found once for every pretraining job.


# (a checkpoint: the pretraining stages are keyed on its output, see plan())
checkpoint leakage:
    input:
        stage_inputs("leakage"),
    output:
        stage_outputs("leakage"),
    log:
        f"{RESULTS}/logs/leakage/{{key}}.log",
    priority: CHAIN_PRIORITY
    conda:
        ENV
    # every core it may have (structure matching: worker processes over the candidate pairs)
    threads: ALL_CORES
    params:
        spec=stage_spec("leakage"),
        dir=stage_dir("leakage"),
    shell:
        "python -m matssl.cli stage leakage --spec {params.spec:q} --out {params.dir:q} --threads {threads} > {log:q} 2>&1"


# The guard's exclusion set under a name made of its digest: what pretraining stages read, so that a guard re-made
# from other inputs (a new property) with the same set leaves them as they are.
localrules:
    exclusion,


rule exclusion:
    # (no input: the copy is asked for only once the guard is done, see plan(); an input or parameter naming the
    # guard's folder would re-make the copy, and with it every pretraining stage, whenever a new guard has the same set)
    output:
        f"{RESULTS}/exclusions/{{digest}}/excluded.json",
    log:
        f"{RESULTS}/logs/exclusions/{{digest}}.log",
    priority: CHAIN_PRIORITY
    run:
        copy_exclusion(wildcards.digest, output[0], log[0])


# One self-supervised objective on the pool (scratch: the untrained encoder). GPU when there is one.


rule pretrain:
    input:
        stage_inputs("pretrain"),
    output:
        stage_outputs("pretrain"),
    log:
        f"{RESULTS}/logs/pretrain/{{key}}.log",
    priority: CHAIN_PRIORITY
    conda:
        ENV
    threads: PLAN.cfg.threads
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    params:
        spec=stage_spec("pretrain"),
        dir=stage_dir("pretrain"),
    shell:
        "python -m matssl.cli stage pretrain --spec {params.spec:q} --out {params.dir:q} --threads {threads} --gpus {resources.gpu:q} > {log:q} 2>&1"
