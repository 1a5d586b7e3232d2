cd /tmp/before
export PYTHONPATH=/tmp/before
M=/tmp/rs_default/model; D=/tmp/rs_default/math.parquet
/work/main/.venv/bin/python -m prime_megatron.train --config configs/qwen25_math_7b_prime.yaml \
 run.output_dir=/tmp/rs_before/run run.resume=never run.steps=2 run.eval_prompts=0 run.verify_sync_every=1 \
 run.save_every=0 run.export_hf=false run.export_prm_hf=false run.plot=false run.tensorboard=false \
 model.source=hf model.path=$M model.dtype=float32 rollout.dtype=float32 parallel.tensor_parallel=1 \
 rollout.tensor_parallel_size=1 rollout.sleep_between_rollouts=false rollout.max_response_len=256 \
 batch.prompts_per_step=4 batch.samples_per_prompt=4 batch.mini_batches_per_step=1 batch.prm_mini_batches_per_step=1 \
 algo.accuracy_low=0.0 algo.accuracy_high=1.0 rewards.num_workers=1 "data.train_files=[$D]" "data.val_files=[]"
