"""surveybot: the field work of an international survey, around the survey platform."""

__version__ = "0.1.0"
