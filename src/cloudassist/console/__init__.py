"""The web console at `/console/`: server-rendered pages over the services layer, for one signed-in account.

app.py         the routes and the Starlette application mounted on the API
visit.py       one request of a signed-in browser: its session, CSRF check, form, responses
signin.py      signing in and out (access key and secret), rate-limited like the API
forms.py       HTML form fields into the services' own types (RunOptions, Targets, specs)
fleet.py       managed instances and activations
tasks.py       running commands, the list of invocations, one invocation (stop, re-run, history)
library.py     saved commands and sending files
stream.py      an invocation's progress and output as server-sent events while it runs
"""
