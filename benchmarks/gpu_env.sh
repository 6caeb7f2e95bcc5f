# Sourced by the prepared GPU runs (kge_gpu.sh, kge_ray_gpu.sh), from the repository root: the
# machine has no internet, so the wheels that travelled in .whl/ are installed into /tmp/site
# (when there are any), and PYTHONPATH points at them and at this checkout.
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || return 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
