# Graphs, augmented views and per-atom fingerprints: cached inputs of the training stages.


rule graphs:
    input:
        stage_inputs("graphs"),
    output:
        stage_outputs("graphs"),
    log:
        f"{RESULTS}/logs/graphs/{{key}}.log",
    priority: CHAIN_PRIORITY
    conda:
        ENV
    params:
        spec=stage_spec("graphs"),
        dir=stage_dir("graphs"),
    shell:
        "python -m matssl.cli stage graphs --spec {params.spec:q} --out {params.dir:q} > {log:q} 2>&1"


rule augment:
    input:
        stage_inputs("augment"),
    output:
        stage_outputs("augment"),
    log:
        f"{RESULTS}/logs/augment/{{key}}.log",
    priority: CHAIN_PRIORITY
    conda:
        ENV
    resources:
        mem_mb=8000,  # the 154,141-structure pool's four views a structure: 5.7 GB at the peak (bench/pool_stages.py)
    params:
        spec=stage_spec("augment"),
        dir=stage_dir("augment"),
    shell:
        "python -m matssl.cli stage augment --spec {params.spec:q} --out {params.dir:q} > {log:q} 2>&1"


rule fingerprints:
    input:
        stage_inputs("fingerprints"),
    output:
        stage_outputs("fingerprints"),
    log:
        f"{RESULTS}/logs/fingerprints/{{key}}.log",
    priority: CHAIN_PRIORITY
    conda:
        ENV
    # every core it may have (worker processes over chunks of structures); it runs before any training
    threads: ALL_CORES
    params:
        spec=stage_spec("fingerprints"),
        dir=stage_dir("fingerprints"),
    shell:
        "python -m matssl.cli stage fingerprints --spec {params.spec:q} --out {params.dir:q} --threads {threads} > {log:q} 2>&1"


# A foundation model's frozen crystal features of a dataset (objective: foundation): probes and finetuned heads.
rule foundation:
    input:
        stage_inputs("foundation"),
    output:
        stage_outputs("foundation"),
    log:
        f"{RESULTS}/logs/foundation/{{key}}.log",
    conda:
        ENV
    threads: ALL_CORES
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        spec=stage_spec("foundation"),
        dir=stage_dir("foundation"),
    shell:
        "python -m matssl.cli stage foundation --spec {params.spec:q} --out {params.dir:q} --threads {threads} > {log:q} 2>&1"
