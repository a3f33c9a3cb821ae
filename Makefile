# The two commands of the README quickstart.
.PHONY: demo test services-stop

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

services-stop:
	bash -c 'source scripts/bootstrap.sh && boeflow services stop'
