# The one page people read.


localrules:
    report,
    property,


rule report:
    input:
        lambda wc: [PLAN.property_target(p) for p in PLAN.cfg.properties],
        lambda wc: [s.done for s in PLAN.stages.values()],
    output:
        f"{RESULTS}/report.html",
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        ENV
    params:
        spec=lambda wc: json.dumps(PLAN.report_spec()),
        code=code_fingerprint("report"),
    shell:
        "matssl report --spec {params.spec:q} --out {output:q} > {log:q} 2>&1"
