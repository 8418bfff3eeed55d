"""Errors that cross the API boundary, keyed by their wire code.

    ApiError                 one error of the ECS API: Code, Message and HTTP status
    └── (no subclasses)      every code lives in CATALOGUE, so a code names exactly one status and text

`api/rpc/envelope.py` is the only place that turns an ApiError into a response body. Domain and
service code raise `ApiError.of("InvalidCmdId.NotFound")`; a message may be given when the
catalogued one needs a detail (for instance which parameter was missing).
"""

from __future__ import annotations

from typing import Final

#: code -> (HTTP status, default message). Texts are the ECS documentation's, verbatim where it has one.
CATALOGUE: Final[dict[str, tuple[int, str]]] = {
    # generic gateway errors (reference §3.7)
    "MissingParameter": (
        400,
        'The input parameter "{name}" that is mandatory for processing this request is not supplied.',
    ),
    "InvalidParameter": (400, 'The specified parameter "{name}" is not valid.'),
    "InvalidParamater": (400, 'The specified parameter "{name}" is not valid.'),
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards."),
    "SignatureDoesNotMatch": (
        400,
        "Specified signature is not matched with our calculation. server string to sign is:{sts}",
    ),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "InvalidTimeStamp.Expired": (400, "Specified time stamp or date value is expired."),
    "IllegalTimestamp": (
        400,
        'The input parameter "Timestamp" that is mandatory for processing this request is not supplied.',
    ),
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "Forbidden.AccessKeyDisabled": (403, "The Access Key is disabled."),
    "InvalidAction.NotFound": (404, "Specified api is not found, please check your url and method."),
    "UnsupportedOperation": (
        400,
        "The action {name} is part of the Cloud Assistant API but is not implemented by this server yet.",
    ),
    "InvalidVersion": (400, 'Specified parameter Version "{name}" is not valid.'),
    "UnsupportedHTTPMethod": (403, "This HTTP method is not supported."),
    "InvalidRegionId.NotFound": (404, "The RegionId provided does not exist in our records."),
    "RequestTooLarge": (413, "The request is larger than this server accepts."),
    "InternalError": (500, "The request processing has failed due to some unknown error, exception or failure."),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server."),
    "Throttling.User": (400, "Request was denied due to user flow control."),
    "IdempotentParameterMismatch": (
        403,
        "The specified parameter has changed while using an already used clientToken.",
    ),
    "InvalidClientToken.Malformed": (400, "The specified parameter ClientToken is not valid."),
    # paging (seed: 403; a setting switches to the newer 400)
    "InvalidParam.PageNumber": (403, "The specified parameter is invalid."),
    "InvalidParam.PageSize": (403, "The specified parameter is invalid."),
    "InvalidParameter.NextToken": (400, "The specified parameter NextToken is not valid."),
    "InvalidParameter.MaxResults": (400, "The specified parameter MaxResults is not valid."),
    # tags
    "NumberExceed.Tags": (400, "The maximum number of tags is exceeded."),
    "Duplicate.TagKey": (400, "The Tag.N.Key contains duplicate key."),
    "InvalidTagKey.Malformed": (400, "The specified Tag.n.Key is not valid."),
    "InvalidTagValue.Malformed": (400, "The specified Tag.n.Value is not valid."),
    "MissingParameter.TagKey": (400, "The parameter Tag.n.Key is required."),
    "NumberExceed.ResourceTags": (400, "The maximum number of resource tags is exceeded."),
    "MissingParameter.ResourceTagKey": (400, "The parameter ResourceTag.n.Key is required."),
    "InvalidResourceTagKey.Malformed": (400, "The specified ResourceTag.n.Key is not valid."),
    "InvalidResourceTagValue.Malformed": (400, "The specified ResourceTag.n.Value is not valid."),
    "Duplicate.ResourceTagKey": (400, "The ResourceTag.N.Key contains duplicate key."),
    "InvalidResourceTag.InstanceNotFound": (400, "InstanceIds are not found by the specified ResourceTag."),
    "InvalidResourceTag.ConflictWithInstanceIds": (400, "The specified param ResourceTag conflicts with InstanceId."),
    # TagResources / UntagResources / ListTagResources (ECS TagResources error table; statuses as documented)
    "MissingParameter.ResourceType": (404, "The parameter - ResourceType should not be null."),
    "MissingParameter.ResourceIds": (404, "The parameter - ResourceIds.N should not be null."),
    "MissingParameter.Tags": (404, "The parameter - Tags should not be null."),
    "MissingParameter.ResourceIdOrTag": (400, "Either ResourceId or Tag must be specified."),
    "InvalidResourceType.NotFound": (404, "The ResourceType provided does not exist in our records."),
    "InvalidResourceId.NotFound": (404, "The specified ResourceIds are not found in our records."),
    "NumberExceed.ResourceIds": (400, "The ResourceIds parameter's number is exceed , Valid : 50."),
    "NumberExceed.TagKeys": (400, "The TagKeys parameter's number is exceed , Valid : 20."),
    "OperationDenied.QuotaExceed": (400, "The quota of tags on resource is beyond permitted range."),
    "InvalidParameter.TagValue": (400, "The parameter Tag.N.Value requires Tag.N.Key."),
    "InvalidParameter.TagFilter": (400, "The specified parameter TagFilter is not valid."),
    # commands
    "InvalidCmdType.NotFound": (404, "The specified command type does not exist."),
    "InvalidCommandType.NotFound": (404, "The specified parameter Type does not exist."),
    "CmdContent.DecodeError": (400, "The CommandContent can not be base64 decoded."),
    "CmdContent.ExceedLimit": (403, "The length of the command content exceeds the upper limit."),
    "CmdName.ExceedLimit": (403, "The length of the command name exceeds the upper limit."),
    "CmdDesc.ExceedLimit": (403, "The length of the command description exceeds the upper limit."),
    "CmdCount.ExceedQuota": (403, "The total number of commands in the current region exceeds the quota."),
    "CmdParamCount.ExceedLimit": (403, "The maximum number of custom parameters is exceeded."),
    "CmdParamName.ExceedLimit": (403, "The maximum length of a parameter name is exceeded."),
    "CmdParam.EmptyKey": (400, "You must specify the parameter names."),
    "CmdParam.InvalidParamName": (
        400,
        "Invalid parameter name. The name can contain only lowercase letters (a to z), uppercase letters "
        "(A to Z), numbers (0 to 9), hyphens (-), and underscores (_).",
    ),
    "InvalidParameter.WorkingDir": (400, "The specified parameter WorkingDir is not valid."),
    "InvalidLauncher.LengthLimitExceeded": (
        403,
        "The length of the parameter Launcher exceeds the limit of 1 KB characters.",
    ),
    "InvalidTimeout.ExceedLimit": (403, "The specified parameter Timeout exceeds the upper limit."),
    "InvalidCmdId.NotFound": (404, "The specified command ID does not exist."),
    "InvalidName.LengthLimitExceeded": (403, "The length of the parameter Name exceeds the limit."),
    "InvalidDescription.LengthLimitExceeded": (403, "The length of the parameter Description exceeds the limit."),
    "Operation.Forbidden": (403, "The operation is not permitted."),
    "InvalidResourceGroup.NotFound": (404, "The ResourceGroup provided does not exist in our records."),
    # invocations
    "MissingParam.InstanceId": (400, "The parameter instanceId is missing or empty."),
    "InstanceIds.ExceedLimit": (403, "The number of instance IDs exceeds the upper limit."),
    "InvalidInstance.NotFound": (404, "The specified instance does not exist."),
    "InvalidInstance.NotMatch": (400, "The specified instance type does not match the command."),
    "InvalidRepeatMode.NotFound": (404, "The specified repeat mode does not exist."),
    "MissingParam.Frequency": (400, "The frequency must be specified when you create a timed task."),
    "InvalidParam.Frequency": (400, "The specified frequency is invalid."),
    "InvalidTerminationMode.NotFound": (404, "The specified termination mode does not exist."),
    "Username.ExceedLimit": (403, "The length of the username exceeds the upper limit."),
    "WindowsPasswordName.ExceedLimit": (403, "The length of the WindowsPasswordName exceeds the upper limit."),
    "InvalidContainerId.Malformed": (400, "The specified parameter ContainerId is not valid."),
    "InvalidContainerName.Malformed": (400, "The specified parameter ContainerName is not valid."),
    "Parameter.Disabled": (400, "Parameters cannot be passed in when the command customization function is disabled."),
    "InvalidParameter.Parameters": (400, "The specified parameter Parameters is not valid."),
    "ParameterCount.ExceedLimit": (403, "The maximum number of parameters is exceeded."),
    "ParameterKey.ExceedLimit": (403, "The maximum length of a parameter name is exceeded."),
    "Parameter.NotMatched": (
        403,
        "The passed-in parameters do not match the parameters defined when you created the command.",
    ),
    "ParameterKey.Duplicate": (403, "Parameter names cannot be duplicated."),
    "ParameterType.NotSupported": (403, "The type of parameter value is not supported."),
    "InvalidInvokeId.NotFound": (404, "The specified invoke ID does not exist."),
    "InvalidInstanceId.NotFound": (404, "The specified parameter InstanceId does not exist."),
    "Invocation.ExceedQuota": (403, "The invocation quota in the current region has been reached for today."),
    "InvalidParameter.IncludeHistory": (400, "The parameter InvokeId is required when IncludeHistory is true."),
    "InvalidParameter.IncludeOutput": (400, "The parameter IncludeOutput requires InvokeId or InstanceId."),
    # ModifyInvocationAttribute (reference §7: its own codes, e.g. InvalidParameter.Frequency, not InvalidParam.)
    "InvalidParameter.Frequency": (400, "The specified parameter Frequency is not valid."),
    "InvalidOperation.RepeatModeUnsupported": (
        403,
        "Only tasks whose RepeatMode is Period, NextRebootOnly or EveryReboot can be modified.",
    ),
    "InvalidOperation.InvokeAlreadyFinished": (403, "The specified invocation has already finished."),
    "InvalidCommandContent.DecodeError": (400, "The CommandContent can not be base64 decoded."),
    "InvalidCommandContent.LengthLimitExceeded": (
        403,
        "The length of the parameter CommandContent exceeds the limit of 24 KB characters.",
    ),
    "InvalidParameters.KeyDuplicate": (400, "The parameter names in Parameters cannot be duplicated."),
    "InvalidParameters.KeyNotMatch": (
        400,
        "The passed-in parameters do not match the parameters defined in the command.",
    ),
    "InvalidParameters.KeyMalformed": (400, "A parameter name in the command content is not valid."),
    "InvalidParameters.KeyEmpty": (400, "A parameter name cannot be empty."),
    "InvalidParameters.CountLimitExceeded": (403, "The number of parameters exceeds the limit."),
    "InvalidParameters.KeyLengthLimitExceeded": (403, "The length of a parameter name exceeds the limit of 64."),
    "InvalidParameters.ValueTypeUnsupported": (403, "The type of a parameter value is not supported."),
    "InvalidInstanceId.OSTypeUnsupported": (
        403,
        "The OS type of the instance corresponding to the parameter InstanceId does not support the command.",
    ),
    "InvalidInstanceId.CountLimitExceeded": (403, "The number of instances of the task exceeds the limit of 100."),
    "CommandLimitExceeded": (403, "The count of command in current region exceeds the limit."),
    "InvalidCommandId.NotFound": (404, "The specified parameter CommandId does not exist."),
    # SendFile (reference §7; the 2021 docs gave every File* error 403)
    "FileTargetDir.Invalid": (400, "The target directory of file is invalid."),
    "FileMode.Invalid": (400, "The mode of file is invalid."),
    "FileContent.DecodeError": (400, "The Content can not be base64 decoded."),
    "FileContentType.Invalid": (400, "The ContentType of file is invalid."),
    "FileSize.ExceedLimit": (403, "The length of file content exceeds limit."),
    "FileName.ExceedLimit": (403, "The length of file name exceeds limit."),
    "FileDesc.ExceedLimit": (403, "The length of file description exceeds limit."),
    # ModifyCloudAssistantSettings / DescribeCloudAssistantSettings (reference §7; the documents give codes only,
    # so the texts are ours)
    "InvalidParameter.SettingType": (400, "The specified parameter SettingType is not valid."),
    "InvalidParameter.OssBucketName": (400, "The specified OSS bucket name is not valid."),
    "InvalidParameter.OssPrefix": (400, "The specified OSS prefix is not valid."),
    "InvalidParameter.OssEncryptionType": (400, "The specified OSS encryption type is not valid."),
    "InvalidParameter.OssEncryptionAlgorithm": (400, "The specified OSS encryption algorithm is not valid."),
    "InvalidParameter.OssEncryptionKeyId": (400, "The specified OSS encryption key ID is not valid."),
    "InvalidParameter.SlsProjectName": (400, "The specified SLS project name is not valid."),
    "InvalidParameter.SlsLogstoreName": (400, "The specified SLS Logstore name is not valid."),
    "InvalidParameter.AllowedUpgradeWindow": (400, "The specified upgrade window is not valid."),
    "InvalidAllowedUpgradeWindow.DurationTooShort": (400, "The duration of an upgrade window is too short."),
    "InvalidAllowedUpgradeWindow.Required": (
        400,
        "At least one upgrade window is required when the custom upgrade configuration is enabled.",
    ),
    "InvalidAllowedUpgradeWindow.CountLimitExceeded": (403, "The number of upgrade windows exceeds the limit of 5."),
    "InvalidParameter.TimeZone": (400, "The specified time zone is not valid."),
    # activations and managed instances
    "InstanceName.ExceedLimit": (400, "The length of the parameter InstanceName exceeds the limit."),
    "InstanceName.InvalidPattern": (400, "The specified parameter InstanceName is not valid."),
    "ActivationDesc.ExceedLimit": (400, "The length of the parameter Description exceeds the limit."),
    "ActivationLimitation.Invalid": (400, "The specified parameter InstanceCount exceeds the limit of 1000."),
    "AddressRange.InvalidPattern": (400, "The specified parameter IpAddressRange is not valid."),
    "ActivationCount.ExceedLimit": (400, "The number of activation codes exceeds the limit."),
    "ActivationTTL.ExceedLimit": (400, "The specified parameter TimeToLiveInHours exceeds the limit."),
    "InvalidActivationId.NotFound": (404, "The specified activation ID does not exist."),
    "InvalidOperation.ActivationInUse": (
        403,
        "The activation code cannot be deleted because instances are registered with it.",
    ),
    "InvalidInstanceName.Malformed": (400, "The specified parameter InstanceName is not valid."),
    # registration of a managed instance (agent protocol; no ECS text exists, so these are our own)
    "InvalidActivationCode.Mismatch": (403, "The activation code does not match the specified activation ID."),
    "InvalidActivation.Disabled": (403, "The activation code is disabled."),
    "InvalidActivation.Expired": (403, "The activation code has expired."),
    "InvalidActivation.CountExhausted": (
        403,
        "The activation code has already been used to register its maximum number of instances.",
    ),
    "InvalidActivation.IpAddressDenied": (403, "The IP address of the host is not allowed to use the activation code."),
    "InvalidPublicKey.Malformed": (400, "The public key is not a valid PEM or base64 encoded RSA public key."),
    # Session Manager: StartTerminalSession's documented table (reference §7), EndTerminalSession's
    "PortNumber.Invalid": (400, "The specified parameter PortNumber is not valid."),
    "InvalidParameter.ConnectionType": (400, "The specified parameter ConnectionType is not valid."),
    "SessionCount.ExceedLimit": (403, "The number of sessions exceeds the upper limit."),
    "UserBehavior.SessionManagerDisabled": (403, "The api is disabled by user behavior."),
    "InvalidCommandLine.Conflict": (403, "CommandLine cannot be specified together with PortNumber or TargetServer."),
    "InvalidTargetServer.MissingPortNumber": (403, "TargetServer requires PortNumber."),
    "InvalidCommandLine.LengthLimitExceeded": (403, "The length of CommandLine exceeds the limit of 512."),
    "InvalidInstanceIds.CountLimitExceeded": (
        403,
        "Only one instance may be specified together with TargetServer or CommandLine.",
    ),
    "InvalidTargetServer.LengthLimitExceeded": (403, "The length of TargetServer exceeds the limit of 128."),
    "InvalidPasswordName.LengthLimitExceeded": (403, "The length of PasswordName exceeds the limit of 255."),
    "InvalidSessionId.NotFound": (404, "The specified SessionId does not exist."),
}


class ApiError(Exception):
    """An error of the ECS API, carrying its wire code, message and HTTP status."""

    def __init__(self, code: str, message: str, http_status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        #: what failed, in the caller's words (the rule and the value), appended to the message by `because`
        self.detail = ""

    def because(self, detail: str) -> ApiError:
        """The same error, its message followed by `detail`: the rule that failed and the value that broke it.
        Code and HTTP status are unchanged, and so is the documented text the message starts with."""
        error = ApiError(self.code, f"{self.message} {detail}", self.http_status)
        error.detail = detail
        return error

    @classmethod
    def of(cls, code: str, message: str | None = None, *, http_status: int | None = None, **fmt: str) -> ApiError:
        """The catalogued error `code`, its message filled with `fmt` or replaced by `message`."""
        status, template = CATALOGUE[code]
        text = message if message is not None else (template.format(**fmt) if fmt else template)
        return cls(code, text, http_status if http_status is not None else status)

    @classmethod
    def missing(cls, name: str) -> ApiError:
        """`MissingParameter.<name>`: a required parameter was not sent."""
        status, template = CATALOGUE["MissingParameter"]
        return cls(f"MissingParameter.{name}", template.format(name=name), status)

    @classmethod
    def invalid(cls, name: str, detail: str | None = None) -> ApiError:
        """`InvalidParameter.<name>`: a parameter could not be read as its type or is out of range."""
        status, template = CATALOGUE["InvalidParameter"]
        text = template.format(name=name) + (f" {detail}" if detail else "")
        return cls(f"InvalidParameter.{name}", text, status)
