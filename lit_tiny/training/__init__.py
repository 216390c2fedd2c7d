"""The pretraining machinery that ``pretrain/*.py`` share, one concern per module:

    settings     the script's argument groups (--train.*, --eval.*, --checkpoint.*, --data.*)
    batch_plan   from a global batch in tokens to micro batches and gradient accumulation
    distributed  Lightning Fabric with FSDP2: process groups, sharding, mixed precision
    optimizer    AdamW and the warmup + cosine learning-rate schedule
    run_dir      the run folder: every path in it, metrics.jsonl, summary.json, progress.json
    train_state  resumable sharded training states
    metrics      TensorBoard and metrics.jsonl logging
    plots        the run's loss.png
    speed        tokens/s, ETA, MFU, measured FLOPs, peak memory
"""
