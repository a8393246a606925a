# Sources to the canonical structure table. The download job reads MP_API_KEY from its environment (it is a
# local job); no `envvars:` directive, which would demand the key on every invocation, cached download or not.


localrules:
    download,


rule download:
    output:
        stage_outputs("download"),
    log:
        f"{RESULTS}/logs/download/{{key}}.log",
    priority: CHAIN_PRIORITY
    conda:
        ENV
    params:
        spec=stage_spec("download"),
        dir=stage_dir("download"),
    shell:
        "python -m matssl.cli stage download --spec {params.spec:q} --out {params.dir:q} > {log:q} 2>&1"


rule ingest:
    input:
        stage_inputs("ingest"),
    output:
        stage_outputs("ingest"),
    log:
        f"{RESULTS}/logs/ingest/{{key}}.log",
    priority: CHAIN_PRIORITY
    conda:
        ENV
    params:
        spec=stage_spec("ingest"),
        dir=stage_dir("ingest"),
    shell:
        "python -m matssl.cli stage ingest --spec {params.spec:q} --out {params.dir:q} > {log:q} 2>&1"


rule splits:
    input:
        stage_inputs("splits"),
    output:
        stage_outputs("splits"),
    log:
        f"{RESULTS}/logs/splits/{{key}}.log",
    priority: CHAIN_PRIORITY
    conda:
        ENV
    params:
        spec=stage_spec("splits"),
        dir=stage_dir("splits"),
    shell:
        "python -m matssl.cli stage splits --spec {params.spec:q} --out {params.dir:q} > {log:q} 2>&1"
