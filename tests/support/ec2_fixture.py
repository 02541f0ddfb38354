#!/usr/bin/env python3
"""What the EC2 tests need from moto, done with boto3 (installed with moto[server]).

  ec2_fixture.py prepare ENDPOINT CIDR
      While moto's authentication is still off: creates an IAM user allowed
      everything and its access key, a VPC and a subnet of CIDR, two security
      groups and a key pair, and picks an image; then turns moto's signature
      checking on (moto-api/reset-auth). Prints them as JSON.
  ec2_fixture.py describe ENDPOINT ACCESS_KEY SECRET_KEY
      Prints every instance (all states) as JSON: id, state, tags, security
      groups, subnet, private address and the user-data, read back from EC2.
"""
import base64
import json
import sys
import urllib.request

import boto3

REGION = "us-east-1"


def client(service, endpoint, key="test", secret="test"):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id=key, aws_secret_access_key=secret)


def prepare(endpoint, cidr):
    iam = client("iam", endpoint)
    iam.create_user(UserName="occopus-test")
    iam.put_user_policy(UserName="occopus-test", PolicyName="all", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }))
    key = iam.create_access_key(UserName="occopus-test")["AccessKey"]
    ec2 = client("ec2", endpoint)
    vpc = ec2.create_vpc(CidrBlock=cidr.rsplit(".", 2)[0] + ".0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
    groups = [ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]
              for name in ("occopus-test-a", "occopus-test-b")]
    ec2.create_key_pair(KeyName="occopus-test")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    # From now on every request must carry a valid SigV4 signature.
    urllib.request.urlopen(urllib.request.Request(
        endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
        headers={"Content-Type": "text/plain"})).read()
    print(json.dumps({
        "accesskey": key["AccessKeyId"], "secretkey": key["SecretAccessKey"],
        "region": REGION, "image_id": image, "instance_type": "t3.micro",
        "key_name": "occopus-test", "subnet_id": subnet, "security_group_ids": groups,
    }))


def describe(endpoint, key, secret):
    ec2 = client("ec2", endpoint, key, secret)
    found = []
    for reservation in ec2.describe_instances()["Reservations"]:
        for instance in reservation["Instances"]:
            user_data = ec2.describe_instance_attribute(
                InstanceId=instance["InstanceId"], Attribute="userData")["UserData"]
            found.append({
                "id": instance["InstanceId"],
                "state": instance["State"]["Name"],
                "tags": {t["Key"]: t["Value"] for t in instance.get("Tags", [])},
                "security_group_ids": sorted(g["GroupId"] for g in instance["SecurityGroups"]),
                "subnet_id": instance.get("SubnetId"),
                "key_name": instance.get("KeyName"),
                "private_ip": instance.get("PrivateIpAddress"),
                "user_data": base64.b64decode(user_data["Value"]).decode()
                if "Value" in user_data else None,
            })
    print(json.dumps(found))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"prepare": prepare, "describe": describe}[command](*args)
