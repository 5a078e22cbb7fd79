"""benchmarks/pipeline_rate.py's timing helper on a known iterator."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'benchmarks'))
import pipeline_rate  # pylint: disable=g-import-not-at-top


def test_time_batches_counts_and_times_what_it_is_asked():
  calls = []

  def batches():
    while True:
      calls.append(1)
      time.sleep(0.2 if len(calls) == 1 else 0.002)   # a slow first batch, then fast ones
      yield {'x': len(calls)}

  report = pipeline_rate.time_batches(batches(), batches=10, warmup=3)
  assert len(calls) == 1 + 3 + 10
  assert report['first_batch_s'] >= 0.2
  assert 0.002 <= report['min_s'] <= report['median_s'] <= report['max_s'] < 0.2
  assert report['batches_per_s'] <= 1 / 0.002
